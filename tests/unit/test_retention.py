"""Retention (kfnb.retention): which runs a policy removes, the rules that keep runs whatever it
says, and what removing them frees. Runs are made through the Store API in a store of its own."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from kfnb.retention import (
    Policy,
    PolicyError,
    collect,
    disk_usage,
    folder_bytes,
    human_bytes,
    parse_duration,
    plan,
)
from kfnb.tracking import Run, RunNotFound, Store, TrackingError


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home")


def make(
    store: Store,
    name: str = "nb",
    *,
    kind: str = "pipeline",
    status: str = "SUCCEEDED",
    parent: str | None = None,
    size: int = 0,
    steps: tuple[str, ...] = ("a",),
    cached_from: str | None = None,
) -> Run:
    """A run that ended ``status`` (or is still ``RUNNING``/``PENDING``) with ``size`` bytes of
    artifacts; ``cached_from``: its step ``a`` was served by the step cache from that step."""
    run = store.create_run(
        kind=kind,
        name=name,
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={},
        steps=steps,
        parent_id=parent,
    )
    if size:
        data = Path(run.artifacts_dir) / "data" / steps[0]
        data.mkdir(parents=True)
        (data / "x.pkl").write_bytes(b"x" * size)
    if cached_from is not None:
        store.set_step_status(run.id, steps[0], "CACHED", cached_from=cached_from)
    if status != "PENDING":
        store.set_run_status(run.id, "RUNNING")
    if status not in ("PENDING", "RUNNING"):
        store.set_run_status(run.id, status)  # type: ignore[arg-type]
    return store.get_run(run.id)


def ids(report_runs: list[object]) -> list[str]:
    return [r.run.id for r in report_runs]  # type: ignore[attr-defined]


def test_durations_sizes_and_policies_parse() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("1d12h") == 36 * 3600
    assert parse_duration("90m") == 5400
    assert parse_duration(45) == 45.0
    for bad in ("", "30", "soon", "3x", "-1d"):
        with pytest.raises(PolicyError):
            parse_duration(bad)
    assert human_bytes(0) == "0 B"
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(25 * 1024 * 1024) == "25 MiB"
    assert human_bytes(None) == ""
    policy = Policy.of(keep_last=3, older_than="30d", status="failed, canceled", kind="pipeline")
    assert policy.statuses == {"FAILED", "CANCELED"} and policy.kinds == {"pipeline"}
    assert policy.older_than == 30 * 86400
    assert policy.describe() == "canceled/failed pipeline runs ended over 30d ago, the last 3 kept"
    with pytest.raises(PolicyError, match="never removed"):
        Policy.of(status="running")
    with pytest.raises(PolicyError, match="unknown run kind"):
        Policy.of(kind="notebook")
    with pytest.raises(PolicyError, match="negative"):
        Policy.of(keep_last=-1)
    assert Policy.of().empty


def test_a_policy_without_criteria_removes_nothing(store: Store) -> None:
    make(store)
    with pytest.raises(PolicyError, match="at least one criterion"):
        collect(store, Policy())
    assert store.count_runs() == 1


def test_keep_last_keeps_the_newest_top_level_runs(store: Store) -> None:
    old, middle, new = make(store, "a"), make(store, "b"), make(store, "c")
    report = plan(store, Policy.of(keep_last=1))
    assert ids(report.removed) == [middle.id, old.id]  # newest first
    report = plan(store, Policy.of(keep_last=0))
    assert ids(report.removed) == [new.id, middle.id, old.id]
    assert plan(store, Policy.of(keep_last=5)).removed == []


def test_criteria_narrow_what_goes(store: Store) -> None:
    failed = make(store, "f", status="FAILED")
    ok = make(store, "ok")
    canceled = make(store, "c", status="CANCELED")
    train = make(store, "t", kind="train", status="FAILED")
    by_status = plan(store, Policy.of(status="failed,canceled"))
    assert set(ids(by_status.removed)) == {failed.id, canceled.id, train.id}
    by_both = plan(store, Policy.of(status="failed", kind="pipeline"))
    assert ids(by_both.removed) == [failed.id]
    # keep_last counts the runs that match the other criteria: the newest failed one stays
    newest_failed_kept = plan(store, Policy.of(status="failed", keep_last=1))
    assert ids(newest_failed_kept.removed) == [failed.id]
    # age: since the run ended
    assert plan(store, Policy.of(older_than="1h")).removed == []
    later = time.time() + 7200
    aged = plan(store, Policy.of(older_than="1h", kind="pipeline"), now=later)
    assert set(ids(aged.removed)) == {failed.id, ok.id, canceled.id}


def test_runs_that_have_not_ended_are_kept(store: Store) -> None:
    running = make(store, "r", status="RUNNING")
    pending = make(store, "p", status="PENDING")
    done = make(store, "d")
    report = collect(store, Policy.of(keep_last=0))
    assert ids(report.removed) == [done.id]
    held = {h.id: h.reason for h in report.held}
    assert held == {
        pending.id: f"run {pending.id} is PENDING",
        running.id: f"run {running.id} is RUNNING",
    }
    assert {r.id for r in store.list_runs(limit=None)} == {running.id, pending.id}
    with pytest.raises(TrackingError, match="RUNNING"):
        store.delete_runs([running.id])


def test_a_parent_and_its_children_go_together(store: Store) -> None:
    sweep = make(store, "sweep", kind="batch", status="RUNNING")
    sets = [make(store, f"s{i}", parent=sweep.id, size=100) for i in range(2)]
    store.set_run_status(sweep.id, "SUCCEEDED")
    alone = make(store, "alone", size=10)
    report = plan(store, Policy.of(kind="batch"))
    assert ids(report.removed) == [sweep.id]
    assert report.removed[0].ids == [sweep.id, sets[0].id, sets[1].id]
    assert report.run_count == 3 and report.disk_bytes == 200
    # children are judged through their top-level run: --kind pipeline leaves the sweep's sets
    assert ids(plan(store, Policy.of(kind="pipeline")).removed) == [alone.id]
    # a tree with a run still going stays whole
    study = make(store, "study", kind="tune", status="RUNNING")
    trial = make(store, "trial", kind="trial", parent=study.id, status="RUNNING")
    make(store, "trial-run", parent=trial.id, status="SUCCEEDED")
    store.set_run_status(study.id, "FAILED")  # the study ended; its trial (a run of it) has not
    report = plan(store, Policy.of(kind="tune"))
    assert report.removed == [] and [h.id for h in report.held] == [study.id]
    # the store refuses to orphan children
    with pytest.raises(TrackingError, match="not deleted with it"):
        store.delete_runs([sweep.id])
    collect(store, Policy.of(kind="batch"))
    for run in (sweep, *sets):
        with pytest.raises(RunNotFound):
            store.get_run(run.id)
        assert not Path(run.artifacts_dir).exists()


def test_runs_that_kept_runs_reused_are_kept(store: Store) -> None:
    source = make(store, "src", size=1000)
    user = make(store, "user", cached_from=f"{source.id}/a")
    chained = make(store, "chained", cached_from=f"{user.id}/a")
    newest = make(store, "newest")
    report = collect(store, Policy.of(keep_last=1))
    # links among runs that all go keep none of them (and the removal order follows them)
    assert set(ids(report.removed)) == {source.id, user.id, chained.id}
    assert report.held == []
    assert store.count_runs() == 1 and store.list_runs()[0].id == newest.id

    # a kept run's cache source stays, transitively
    source = make(store, "src", size=1000)
    middle = make(store, "middle", cached_from=f"{source.id}/a")
    make(store, "keeper", cached_from=f"{middle.id}/a")
    report = collect(store, Policy.of(keep_last=1))
    assert set(ids(report.removed)) == {newest.id}
    assert {h.id for h in report.held} == {middle.id, source.id}
    assert "reused the results" in next(h.reason for h in report.held if h.id == source.id)
    assert Path(store.get_run(source.id).artifacts_dir, "data", "a", "x.pkl").exists()
    with pytest.raises(TrackingError, match="reused the results"):
        store.delete_runs([source.id])


def test_a_dry_run_frees_nothing_and_counts_bytes(store: Store) -> None:
    old = make(store, "old", size=3000)
    (Path(old.artifacts_dir) / "logs").mkdir()
    (Path(old.artifacts_dir) / "logs" / "a.log").write_bytes(b"l" * 500)
    new = make(store, "new", size=10)
    assert folder_bytes(old.artifacts_dir) == 3500
    assert disk_usage([old, new]) == {old.id: 3500, new.id: 10}
    report = collect(store, Policy.of(keep_last=1), dry_run=True)
    assert report.dry_run and ids(report.removed) == [old.id]
    assert report.disk_bytes == report.freed_bytes == 3500
    assert Path(old.artifacts_dir, "logs", "a.log").exists()
    assert store.get_run(old.id).id == old.id
    assert report.to_dict()["removed"][0] == {
        "id": old.id,
        "kind": "pipeline",
        "name": "old",
        "status": "SUCCEEDED",
        "created_at": old.created_at,
        "finished_at": old.finished_at,
        "runs": 1,
        "disk_bytes": 3500,
    }
    done = collect(store, Policy.of(keep_last=1))
    assert not done.dry_run and done.freed_bytes == 3500
    assert not Path(old.artifacts_dir).exists()


def test_removal_deletes_every_record_of_a_run(store: Store) -> None:
    run = make(store, "gone", size=10)
    store.log_metric(run.id, "loss", 0.5)
    store.log_param(run.id, "lr", 0.1)
    store.add_artifact(run.id, "model", Path(run.artifacts_dir) / "model.pt")
    store.event(run.id, "warning", {"message": "hi"})
    make(store, "kept")
    collect(store, Policy.of(keep_last=1))
    with store._db.read() as conn:
        for table in ("steps", "params", "metrics", "artifacts", "events"):
            count = conn.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", (run.id,))
            assert count.fetchone()[0] == 0, table


def test_files_shared_with_kept_runs_are_not_counted_as_freed(store: Store) -> None:
    source = make(store, "src", size=4000)
    user = make(store, "user")
    target = Path(user.artifacts_dir) / "data" / "a"
    target.mkdir(parents=True)
    os.link(Path(source.artifacts_dir) / "data" / "a" / "x.pkl", target / "x.pkl")  # a cache hit
    report = plan(store, Policy.of(keep_last=1))
    assert ids(report.removed) == [source.id]
    assert report.disk_bytes == 4000 and report.freed_bytes == 0
    both = plan(store, Policy.of(keep_last=0))
    assert both.disk_bytes == 8000 and both.freed_bytes == 4000


def test_ended_runs_sizes_are_remembered(store: Store) -> None:
    run = make(store, "r", size=100)
    assert disk_usage([run]) == {run.id: 100}
    (Path(run.artifacts_dir) / "late.txt").write_bytes(b"z" * 50)
    assert disk_usage([run]) == {run.id: 100}  # measured once while it stays ended
    live = make(store, "live", status="RUNNING", size=10)
    assert disk_usage([live]) == {live.id: 10}
    (Path(live.artifacts_dir) / "more.txt").write_bytes(b"z" * 5)
    assert disk_usage([live]) == {live.id: 15}  # an open run is measured every time


def test_a_tree_of_more_runs_than_sqlite_allows_variables_goes_at_once(store: Store) -> None:
    """A sweep's or a study's tree may hold tens of thousands of runs: more than SQLite allows
    variables in one query (32766 by default; this machine's build allows more, so the store's
    connection is held to the default). Refusals still hold after a refused deletion."""
    parent = make(store, "sweep", kind="batch", steps=())
    child = make(store, "set", parent=parent.id)
    kept = make(store, "kept", cached_from=f"{child.id}/a")
    n = 20_000
    with store._db.write() as conn:  # rows like the child's, made fast
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)
        cols = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (child.id,)).fetchone()
        many = [f"20990101-000000-{i:06x}" for i in range(n)]
        conn.executemany(
            f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [tuple(rid if c == "id" else row[c] for c in cols) for rid in many],
        )
    tree = [parent.id, child.id, *many]
    with pytest.raises(TrackingError, match=f"of run {child.id}"):  # kept reused child's step
        store.delete_runs(tree)
    with pytest.raises(TrackingError, match="which is not deleted with it"):
        store.delete_runs(tree[:-1])
    assert store.count_runs() == n + 3  # nothing went
    assert store.delete_runs([*tree, kept.id]) == [*tree, kept.id]
    assert store.count_runs() == 0
