"""Run kinds and the run tree: which kinds exist, which may nest, and reading a tree back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kfnb.jsonio import dumps
from kfnb.tracking import (
    CHILD_KINDS,
    RUN_KINDS,
    InvalidParent,
    Run,
    Store,
    TrackingError,
    UnknownRunKind,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home")


def new_run(store: Store, kind: str, name: str = "r", parent_id: str | None = None) -> Run:
    return store.create_run(
        kind=kind,
        name=name,
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={},
        parent_id=parent_id,
    )


@pytest.mark.parametrize(
    "kind, message",
    [
        ("training", r"unknown run kind 'training'; did you mean 'train'\?"),
        ("tuning", r"unknown run kind 'tuning'; did you mean 'tune'\?"),
        ("pipe", r"unknown run kind 'pipe'; did you mean 'pipeline'\?"),
        ("zzz", r"unknown run kind 'zzz'\. Fix: use one of: pipeline, train, tune, trial, batch"),
        ("", r"unknown run kind ''"),
        ("Pipeline", r"did you mean 'pipeline'\?"),
    ],
)
def test_an_unknown_kind_is_refused_everywhere(store: Store, kind: str, message: str) -> None:
    with pytest.raises(UnknownRunKind, match=message) as refused:
        new_run(store, kind)
    assert refused.value.fix == "use one of: " + ", ".join(RUN_KINDS)
    with pytest.raises(UnknownRunKind, match=message):
        store.list_runs(kind=kind)
    with pytest.raises(UnknownRunKind, match=message):
        store.count_runs(kind=kind)
    assert store.list_runs(limit=None) == []  # nothing was recorded


# every (parent kind, child kind) pair: allowed exactly when CHILD_KINDS says so
PAIRS = [(p, c, c in CHILD_KINDS[p]) for p in RUN_KINDS for c in RUN_KINDS]


@pytest.mark.parametrize("parent_kind, kind, allowed", PAIRS)
def test_which_kinds_may_nest(store: Store, parent_kind: str, kind: str, allowed: bool) -> None:
    parent = new_run(store, parent_kind)
    if allowed:
        child = new_run(store, kind, parent_id=parent.id[:-1])  # a prefix names the parent
        assert child.parent_id == parent.id
        assert store.get_run(parent.id).child_count == 1
        return
    with pytest.raises(InvalidParent) as refused:
        new_run(store, kind, parent_id=parent.id)
    err = refused.value
    assert err.message == f"a {kind} run cannot be a child of run {parent.id} (a {parent_kind} run)"
    if CHILD_KINDS[parent_kind]:
        assert (
            err.fix
            == f"a {parent_kind} run's children are "
            + " or ".join(sorted(CHILD_KINDS[parent_kind]))
            + " runs"
        )
    else:
        assert err.fix is not None and "has no child runs" in err.fix
    assert [r.id for r in store.list_runs(limit=None)] == [parent.id]


def build_study(store: Store) -> dict[str, Run]:
    """tune -> trial-0 (-> train), trial-1 (-> pipeline); and a batch with two pipelines."""
    runs: dict[str, Run] = {}
    runs["tune"] = new_run(store, "tune", "study")
    runs["trial-0"] = new_run(store, "trial", "trial-0", runs["tune"].id)
    runs["trial-1"] = new_run(store, "trial", "trial-1", runs["tune"].id)
    runs["train"] = new_run(store, "train", "fit", runs["trial-0"].id)
    runs["tpipe"] = new_run(store, "pipeline", "trial-1-pipe", runs["trial-1"].id)
    runs["batch"] = new_run(store, "batch", "sweep")
    runs["b0"] = new_run(store, "pipeline", "set-0", runs["batch"].id)
    runs["b1"] = new_run(store, "pipeline", "set-1", runs["batch"].id)
    runs["solo"] = new_run(store, "pipeline", "solo")
    return runs


def shape(tree: dict[str, Any]) -> list[Any]:
    return [tree["name"], tree["child_count"], [shape(c) for c in tree["children"]]]


def test_children_and_tree(store: Store) -> None:
    runs = build_study(store)
    assert [r.name for r in store.children(runs["tune"].id)] == ["trial-0", "trial-1"]
    assert [r.name for r in store.children(runs["batch"].id[:-1])] == ["set-0", "set-1"]
    assert store.children(runs["solo"].id) == []

    tree = store.tree(runs["tune"].id)
    assert shape(tree.to_dict()) == [
        "study",
        2,
        [["trial-0", 1, [["fit", 0, []]]], ["trial-1", 1, [["trial-1-pipe", 0, []]]]],
    ]
    assert [r.name for r in tree.walk()] == ["study", "trial-0", "fit", "trial-1", "trial-1-pipe"]
    assert json.loads(dumps(tree)) == tree.to_dict()  # a tree is plain JSON data
    leaf = store.tree(runs["train"].id)
    assert (leaf.run.name, leaf.children) == ("fit", [])


def test_roots_only_and_child_counts(store: Store) -> None:
    runs = build_study(store)
    roots = store.list_runs(roots_only=True, limit=None)
    assert [(r.name, r.child_count) for r in roots] == [("solo", 0), ("sweep", 2), ("study", 2)]
    assert store.count_runs(roots_only=True) == 3
    assert store.count_runs(roots_only=True, kind="pipeline") == 1
    assert [r.name for r in store.list_runs(kind="pipeline", limit=None)] == [
        "solo",
        "set-1",
        "set-0",
        "trial-1-pipe",
    ]
    page = store.list_runs(limit=None)
    assert {r.name: r.child_count for r in page} == {
        "solo": 0,
        "set-1": 0,
        "set-0": 0,
        "sweep": 2,
        "trial-1-pipe": 0,
        "fit": 0,
        "trial-1": 1,
        "trial-0": 1,
        "study": 2,
    }
    assert store.get_run(runs["tune"].id).to_dict()["child_count"] == 2
    with pytest.raises(TrackingError, match="pass parent_id or roots_only, not both"):
        store.list_runs(parent_id=runs["tune"].id, roots_only=True)


def test_a_deleted_parent_leaves_its_children_as_roots(store: Store) -> None:
    batch = new_run(store, "batch", "sweep")
    child = new_run(store, "pipeline", "set-0", batch.id)
    store.set_run_status(batch.id, "CANCELED")
    store.delete_run(batch.id)
    assert store.get_run(child.id).parent_id is None
    assert [r.name for r in store.list_runs(roots_only=True)] == ["set-0"]
