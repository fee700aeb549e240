"""The run store writes and gives standard JSON only: no NaN or Infinity, whatever it is fed, and
whatever an older kfnb left in the database."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from kfnb.jsonio import dumps
from kfnb.tracking import Store

NAN, INF = float("nan"), float("inf")


def strict(text: str) -> Any:
    """``json.loads`` that refuses NaN, Infinity and -Infinity."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home")


# every JSON column the store writes: (table, column)
JSON_COLUMNS = [
    ("runs", "remote"),
    ("runs", "spec"),
    ("runs", "runner_identity"),
    ("params", "value"),
    ("steps", "error"),
    ("steps", "gpus"),
    ("events", "data"),
]


def test_everything_the_store_writes_is_standard_json(store: Store) -> None:
    local = store.create_run(
        kind="pipeline",
        name="local",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={"lr": NAN, "bounds": [-INF, INF], "nested": {"x": (NAN, 1.0)}},
        steps=("a",),
        spec={"pipeline": {"steps": [{"name": "a", "score": NAN}]}},
    )
    remote = store.create_run(
        kind="pipeline",
        name="remote",
        backend="kfp",
        notebook=None,
        notebook_hash=None,
        params={},
        remote={"host": "h", "quota": INF},
    )
    store.set_remote(remote.id, progress=NAN)
    store.log_param(local.id, "late", -INF)
    store.event(local.id, "warning", {"loss": NAN, "values": [INF]})
    store.set_run_status(local.id, "RUNNING")
    store.set_step_status(local.id, "a", "RUNNING", gpus=["0"])
    store.set_step_status(local.id, "a", "FAILED", error={"message": "diverged", "loss": NAN})

    with sqlite3.connect(store.db_path) as conn:
        for table, column in JSON_COLUMNS:
            texts = [r[0] for r in conn.execute(f"SELECT {column} FROM {table}") if r[0]]
            assert texts, f"{table}.{column}: nothing written, the test lost its point"
            for text in texts:
                strict(text)  # raises on NaN / Infinity

    run = store.get_run(local.id)
    assert run.params["lr"] is None  # stored as null: what JSON can say
    assert run.params["bounds"] == [None, None] and run.params["late"] is None
    assert store.get_run(remote.id).remote == {"host": "h", "quota": None, "progress": None}
    assert store.events(local.id)[1].data == {"loss": None, "values": [None]}


def test_records_an_older_kfnb_left_give_standard_json(store: Store) -> None:
    run = store.create_run(
        kind="pipeline",
        name="old",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={"lr": 0.1},
        steps=("a",),
    )
    store.log_metric(run.id, "loss", NAN, step=0)
    store.log_metric(run.id, "acc", INF, step=0)
    store.log_metric(run.id, "low", -INF)
    with sqlite3.connect(store.db_path) as conn:  # what Python's json wrote before kfnb.jsonio
        conn.execute("UPDATE params SET value = 'NaN' WHERE run_id = ?", (run.id,))
        conn.execute(
            "INSERT INTO params (run_id, name, value) VALUES (?, 'range', '[-Infinity, 1]')",
            (run.id,),
        )
        conn.execute(
            "UPDATE runs SET spec = '{\"score\": NaN}', remote = NULL WHERE id = ?", (run.id,)
        )
        conn.execute(
            'UPDATE steps SET error = \'{"message": "m", "loss": Infinity}\' WHERE run_id = ?',
            (run.id,),
        )

    old = store.get_run(run.id)
    assert math.isnan(old.params["lr"]) and math.isnan(old.metrics["loss"])  # kept as read
    as_dict = old.to_dict()
    assert strict(dumps(as_dict)) == as_dict
    assert strict(json.dumps(as_dict)) == as_dict  # plain data: even json.dumps gives JSON
    assert (as_dict["params"], as_dict["metrics"], as_dict["spec"]) == (
        {"lr": None, "range": [None, 1]},
        {"loss": None, "acc": None, "low": None},
        {"score": None},
    )
    assert as_dict["steps"][0]["error"] == {"message": "m", "loss": None}

    metrics = [m.to_dict() for m in store.metrics(run.id)]
    assert strict(dumps(metrics)) == metrics
    assert [(m["name"], m["value"]) for m in metrics] == [
        ("loss", None),
        ("acc", None),
        ("low", None),
    ]
    tree = store.tree(run.id).to_dict()
    assert strict(dumps(tree)) == tree
