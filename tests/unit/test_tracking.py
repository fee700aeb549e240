"""The run store (kfnb.tracking): lifecycle, state machine, lookups, records, recovery,
concurrent writers, schema migrations and the in-kernel API. Every store lives in tmp_path."""

from __future__ import annotations

import itertools
import json
import math
import os
import pickle
import runpy
import sqlite3
import subprocess
import sys
import threading
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kfnb.errors import KfnbError
from kfnb.tracking import (
    AmbiguousRunId,
    InvalidTransition,
    MetricValueError,
    Run,
    RunNotFound,
    StepNotFound,
    Store,
    StoreError,
    TrackingError,
    UnknownRunKind,
    context,
    current_run,
    default_home,
    log_metric,
    log_param,
)
from kfnb.tracking.ids import new_run_id
from kfnb.tracking.schema import LATEST, MIGRATIONS

RUN_KEYS = {
    "id",
    "kind",
    "name",
    "status",
    "backend",
    "notebook",
    "params",
    "metrics",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "parent_id",
    "remote",
    "steps",
    "spec",
    "child_count",
}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home")


def new_run(store: Store, steps: tuple[str, ...] = ("a", "b"), **kw: Any) -> Run:
    args: dict[str, Any] = dict(
        kind="pipeline",
        name="demo",
        backend="local",
        notebook="/nb/demo.ipynb",
        notebook_hash="h0",
        params={"n": 1},
    )
    args.update(kw)
    return store.create_run(steps=steps, **args)


def walk(store: Store, run_id: str, statuses: list[str]) -> None:
    for status in statuses:
        store.set_run_status(run_id, status)  # type: ignore[arg-type]


# -- home ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env, expected",
    [
        ("{tmp}/custom", "{tmp}/custom"),
        ("", "{tmp}/user/.kfnb"),
        (None, "{tmp}/user/.kfnb"),
    ],
)
def test_default_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str | None, expected: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    if env is None:
        monkeypatch.delenv("KFNB_HOME", raising=False)
    else:
        monkeypatch.setenv("KFNB_HOME", env.format(tmp=tmp_path))
    home = default_home()
    assert home == Path(expected.format(tmp=tmp_path))
    assert home.is_dir()


# -- lifecycle ----------------------------------------------------------------------------------
def test_run_lifecycle(store: Store) -> None:
    run = new_run(store, params={"n": 3, "name": "x"})
    assert (run.status, run.kind, run.backend, run.params) == (
        "PENDING",
        "pipeline",
        "local",
        {"n": 3, "name": "x"},
    )
    assert [(s.name, s.status, s.attempt) for s in run.steps] == [
        ("a", "PENDING", 0),
        ("b", "PENDING", 0),
    ]
    assert Path(run.artifacts_dir) == store.home / "runs" / run.id
    assert Path(run.artifacts_dir).is_dir()
    assert (run.runner_pid, run.started_at, run.finished_at) == (os.getpid(), None, None)

    started = store.set_run_status(run.id, "RUNNING")
    assert started.started_at is not None and started.finished_at is None
    step = store.set_step_status(
        run.id, "a", "RUNNING", log="/l/a.log", output_notebook="/o/a", gpus=["0", "1"], hash="abc"
    )
    assert (step.status, step.attempt, step.gpus, step.hash, step.log) == (
        "RUNNING",
        1,
        ["0", "1"],
        "abc",
        "/l/a.log",
    )
    done = store.set_step_status(run.id, "a", "SUCCEEDED")
    assert done.finished_at is not None and done.gpus == ["0", "1"]  # kept from RUNNING
    store.set_step_status(run.id, "b", "CACHED")
    ended = store.set_run_status(run.id, "SUCCEEDED")
    assert ended.status == "SUCCEEDED" and ended.finished_at is not None
    assert ended.done and ended.step("b").status == "CACHED"

    as_dict = ended.to_dict()
    assert set(as_dict) == RUN_KEYS
    assert as_dict["steps"][0]["name"] == "a" and as_dict["steps"][0]["error"] is None
    kinds = [(e.kind, e.data.get("step"), e.data["status"]) for e in store.events(run.id)]
    assert kinds == [
        ("run", None, "PENDING"),
        ("run", None, "RUNNING"),
        ("step", "a", "RUNNING"),
        ("step", "a", "SUCCEEDED"),
        ("step", "b", "CACHED"),
        ("run", None, "SUCCEEDED"),
    ]


RUN_ALLOWED = {
    "PENDING": {"RUNNING", "CANCELED", "FAILED"},
    "RUNNING": {"SUCCEEDED", "FAILED", "CANCELING", "CANCELED"},
    "CANCELING": {"CANCELED", "FAILED", "SUCCEEDED"},
    "SUCCEEDED": set(),
    "FAILED": set(),
    "CANCELED": set(),
}
RUN_PATH = {
    "PENDING": [],
    "RUNNING": ["RUNNING"],
    "CANCELING": ["RUNNING", "CANCELING"],
    "SUCCEEDED": ["RUNNING", "SUCCEEDED"],
    "FAILED": ["FAILED"],
    "CANCELED": ["CANCELED"],
}


@pytest.mark.parametrize("old, new", list(itertools.product(RUN_PATH, RUN_PATH)))
def test_run_transitions(store: Store, old: str, new: str) -> None:
    run = new_run(store)
    walk(store, run.id, RUN_PATH[old])
    if new in RUN_ALLOWED[old]:
        assert store.set_run_status(run.id, new, error="e").status == new  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidTransition, match=f"run {run.id} cannot go from {old} to {new}"):
            store.set_run_status(run.id, new)  # type: ignore[arg-type]
        assert store.get_run(run.id).status == old


STEP_ALLOWED = {
    "PENDING": {"RUNNING", "SKIPPED", "CANCELED", "CACHED", "FAILED"},
    "RUNNING": {"SUCCEEDED", "FAILED", "CANCELED"},
    "FAILED": {"RUNNING", "PENDING", "FAILED", "SKIPPED", "CANCELED"},
    "SUCCEEDED": set(),
    "SKIPPED": set(),
    "CANCELED": set(),
    "CACHED": set(),
}
STEP_PATH = {
    "PENDING": [],
    "RUNNING": ["RUNNING"],
    "FAILED": ["RUNNING", "FAILED"],
    "SUCCEEDED": ["RUNNING", "SUCCEEDED"],
    "SKIPPED": ["SKIPPED"],
    "CANCELED": ["CANCELED"],
    "CACHED": ["CACHED"],
}


@pytest.mark.parametrize("old, new", list(itertools.product(STEP_PATH, STEP_PATH)))
def test_step_transitions(store: Store, old: str, new: str) -> None:
    run = new_run(store)
    store.set_run_status(run.id, "RUNNING")
    for status in STEP_PATH[old]:
        store.set_step_status(run.id, "a", status)  # type: ignore[arg-type]
    if new in STEP_ALLOWED[old]:
        assert store.set_step_status(run.id, "a", new).status == new  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidTransition, match=f"step 'a' of run {run.id} cannot go"):
            store.set_step_status(run.id, "a", new)  # type: ignore[arg-type]


def test_retry_counts_attempts_and_clears_the_last_error(store: Store) -> None:
    run = new_run(store)
    store.set_run_status(run.id, "RUNNING")
    store.set_step_status(run.id, "a", "RUNNING")
    failed = store.set_step_status(run.id, "a", "FAILED", error={"message": "boom", "cell": 3})
    assert (failed.attempt, failed.error) == (1, {"message": "boom", "cell": 3})
    retry = store.set_step_status(run.id, "a", "RUNNING")
    assert (retry.attempt, retry.error, retry.finished_at) == (2, None, None)
    assert store.set_step_status(run.id, "a", "SUCCEEDED").attempt == 2


def test_a_finished_run_closes_its_steps_and_freezes_them(store: Store) -> None:
    run = new_run(store, steps=("a", "b", "c"))
    store.set_run_status(run.id, "RUNNING")
    store.set_step_status(run.id, "a", "RUNNING")
    store.set_step_status(run.id, "a", "FAILED", error={"message": "boom"})
    store.set_step_status(run.id, "b", "RUNNING")
    ended = store.set_run_status(run.id, "FAILED", error="step 'a' failed")
    assert [(s.status, (s.error or {}).get("message")) for s in ended.steps] == [
        ("FAILED", "boom"),
        ("FAILED", "the run ended (FAILED) while this step was running"),
        ("SKIPPED", "the run ended (FAILED) before this step started"),
    ]
    assert ended.error == "step 'a' failed"
    with pytest.raises(InvalidTransition, match=r"the run already ended \(FAILED\)"):
        store.set_step_status(run.id, "a", "RUNNING")  # no retry once the run ended
    with pytest.raises(TrackingError, match="already ended"):
        store.add_step(run.id, "late")


@pytest.mark.parametrize(
    "call",
    [
        lambda s, r: s.set_run_status(r, "DONE"),
        lambda s, r: s.set_step_status(r, "a", "running"),
    ],
)
def test_unknown_status(store: Store, call: Any) -> None:
    with pytest.raises(TrackingError, match=r"unknown (run|step) status"):
        call(store, new_run(store).id)


def test_unknown_step(store: Store) -> None:
    run = new_run(store, steps=("train", "evaluate"))
    with pytest.raises(StepNotFound, match=r"no step 'trian'.*did you mean 'train'"):
        store.set_step_status(run.id, "trian", "RUNNING")
    with pytest.raises(StepNotFound, match="its steps: 'train', 'evaluate'"):
        run.step("deploy")


def test_add_step(store: Store) -> None:
    run = new_run(store, steps=(), kind="tune")
    store.add_step(run.id, "trial-1")
    store.add_step(run.id, "trial-0")
    assert [s.name for s in store.get_run(run.id).steps] == ["trial-1", "trial-0"]
    with pytest.raises(TrackingError, match="already has a step 'trial-1'"):
        store.add_step(run.id, "trial-1")


@pytest.mark.parametrize(
    "steps, params, message",
    [
        (("a", "a"), {}, "step names must be unique; repeated: a"),
        (("a", ""), {}, "a step name must be a non-empty string"),
    ],
)
def test_create_run_checks_names(
    store: Store, steps: tuple[str, ...], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(TrackingError, match=message):
        new_run(store, steps=steps, params=params)
    assert store.list_runs() == []


# -- lookups ------------------------------------------------------------------------------------
def test_get_run_by_prefix(store: Store) -> None:
    a, b = new_run(store).id, new_run(store).id
    differ = next(i for i in range(len(a)) if a[i] != b[i])
    unique, common = a[: differ + 1], a[:differ]
    assert store.get_run(a).id == a
    assert store.get_run(unique).id == a
    assert store.resolve_id(b).startswith(common)
    with pytest.raises(AmbiguousRunId, match=f"{a}, {b}") as ambiguous:
        store.get_run(common)
    assert isinstance(ambiguous.value, KfnbError)
    for missing in ("zz", "", "1999"):
        with pytest.raises(RunNotFound, match="`kfnb runs`"):
            store.get_run(missing)


def test_list_runs_order_limit_and_filters(store: Store) -> None:
    parent = new_run(store, kind="tune", steps=())
    trials = [
        new_run(store, kind="trial", parent_id=parent.id[:-2], name=f"t{i}") for i in range(4)
    ]
    other = new_run(store, kind="pipeline")
    newest_first = [other.id, *[t.id for t in reversed(trials)], parent.id]
    assert [r.id for r in store.list_runs()] == newest_first
    assert [r.id for r in store.list_runs(limit=2)] == newest_first[:2]
    assert [r.id for r in store.list_runs(limit=None)] == newest_first
    assert [r.name for r in store.list_runs(kind="trial")] == ["t3", "t2", "t1", "t0"]
    assert [r.id for r in store.list_runs(parent_id=parent.id)] == newest_first[1:5]
    assert trials[0].parent_id == parent.id
    assert store.list_runs(kind="batch") == []
    with pytest.raises(UnknownRunKind, match="'training'; did you mean 'train'"):
        store.list_runs(kind="training")


@pytest.mark.parametrize(
    "now, newest, expected",
    [
        (0.0, None, "19700101-000000-"),  # first run
        (60.0, "19700101-000000-7fffff", "19700101-000100-"),  # a later second
        (60.0, "19700101-000100-ff0000", "19700101-000100-ff"),  # same second: counts up
        (0.0, "19700101-000100-000001", "19700101-000100-00"),  # clock went back
        (60.0, "19700101-000100-ffffff", "19700101-000101-"),  # second full: next one
    ],
)
def test_new_run_ids_sort_after_the_newest(now: float, newest: str | None, expected: str) -> None:
    for _ in range(50):
        run_id = new_run_id(now, newest)
        assert run_id.startswith(expected) and len(run_id) == 22
        assert newest is None or run_id > newest


# -- metrics, params, artifacts, events ---------------------------------------------------------
def test_metrics_history_and_latest(store: Store) -> None:
    run = new_run(store)
    for i, loss in enumerate([0.9, 0.5, 0.25]):
        store.log_metric(run.id, "loss", loss, step=i, source="train")
    store.log_metric(run.id, "acc", 0.8)
    store.log_metric(run.id, "acc", np.float32(0.875), source="eval")
    store.log_metric(run.id, "gap", float("nan"))
    store.log_metric(run.id, "big", float("inf"))
    curve = store.metrics(run.id, "loss")
    assert [(m.value, m.step, m.source) for m in curve] == [
        (0.9, 0, "train"),
        (0.5, 1, "train"),
        (0.25, 2, "train"),
    ]
    assert [m.name for m in store.metrics(run.id)] == ["loss"] * 3 + ["acc", "acc", "gap", "big"]
    latest = store.get_run(run.id).metrics
    assert latest["loss"] == 0.25 and latest["acc"] == 0.875 and latest["big"] == math.inf
    assert math.isnan(latest["gap"]) and math.isnan(store.metrics(run.id, "gap")[0].value)
    assert store.get_run(run.id).to_dict()["metrics"]["gap"] is None  # JSON has no NaN


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, 1.0),
        (3, 3.0),
        (2.5, 2.5),
        (np.float32(0.5), 0.5),
        (np.int64(7), 7.0),
        (np.bool_(True), 1.0),
        (np.array(0.25), 0.25),
        (Fraction(1, 4), 0.25),
    ],
)
def test_metric_values_accepted(store: Store, value: Any, expected: float) -> None:
    run = new_run(store)
    store.log_metric(run.id, "m", value, step=np.int64(4))
    [metric] = store.metrics(run.id)
    assert (metric.value, type(metric.value), metric.step) == (expected, float, 4)


@pytest.mark.parametrize(
    "value, type_name",
    [
        ("0.9", "str"),
        (None, "NoneType"),
        ([1.0], "list"),
        (1 + 2j, "complex"),
        (np.array([1.0, 2.0]), "ndarray"),
        (10**400, "int"),
    ],
)
def test_metric_values_rejected(store: Store, value: Any, type_name: str) -> None:
    run = new_run(store)
    with pytest.raises(MetricValueError, match="metric 'acc'") as err:
        store.log_metric(run.id, "acc", value)
    assert isinstance(err.value, KfnbError) and isinstance(err.value, TypeError)
    assert type_name in str(err.value)
    with pytest.raises(MetricValueError, match="step must be an integer"):
        store.log_metric(run.id, "acc", 1.0, step=1.5)  # type: ignore[arg-type]
    assert store.metrics(run.id) == []


def test_params(store: Store, tmp_path: Path) -> None:
    run = new_run(store, params={"lr": 0.1, "layers": [64, 32]})
    store.log_param(run.id, "lr", 0.01)
    store.log_param(run.id, "tags", {"b", "a"})
    store.log_param(run.id, "path", tmp_path)
    store.log_param(run.id, "seed", np.int64(7))
    store.log_param(run.id, "obj", object)
    params = store.get_run(run.id).params
    assert params == {
        "lr": 0.01,
        "layers": [64, 32],
        "tags": ["a", "b"],
        "path": str(tmp_path),
        "seed": 7,
        "obj": "<class 'object'>",
    }
    assert list(params) == ["lr", "layers", "tags", "path", "seed", "obj"]  # first-set order


def test_artifacts(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = new_run(store)
    monkeypatch.chdir(tmp_path)
    store.add_artifact(run.id, "executed notebook", "out/a.ipynb", step="a")
    store.add_artifact(run.id, "model", tmp_path / "model.pt")
    store.add_artifact(run.id, "executed notebook", tmp_path / "out/a2.ipynb", step="a")
    store.add_artifact(run.id, "executed notebook", tmp_path / "out/b.ipynb", step="b")
    assert [(a["name"], a["path"], a["step"]) for a in store.artifacts(run.id)] == [
        ("model", str(tmp_path / "model.pt"), None),
        ("executed notebook", str(tmp_path / "out/a2.ipynb"), "a"),
        ("executed notebook", str(tmp_path / "out/b.ipynb"), "b"),
    ]


def test_events_polling(store: Store) -> None:
    run, other = new_run(store), new_run(store)
    seen = store.events(run.id)
    assert [e.data for e in seen] == [{"status": "PENDING"}]
    store.event(run.id, "retry", {"step": "a", "attempt": 1})
    store.event(other.id, "warning", {"message": "not this run"})
    store.set_run_status(run.id, "RUNNING")
    fresh = store.events(run.id, after=seen[-1].id)
    assert [(e.kind, e.data) for e in fresh] == [
        ("retry", {"step": "a", "attempt": 1}),
        ("run", {"status": "RUNNING"}),
    ]
    assert store.events(run.id, after=fresh[-1].id) == []
    assert len(store.events(run.id, limit=2)) == 2
    assert fresh[0].to_dict()["run_id"] == run.id


# -- cancel, delete, recover --------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, status, requested",
    [
        ([], "CANCELED", True),
        (["RUNNING"], "CANCELING", True),
        (["RUNNING", "CANCELING"], "CANCELING", True),
        (["RUNNING", "SUCCEEDED"], "SUCCEEDED", False),
    ],
)
def test_request_cancel(store: Store, path: list[str], status: str, requested: bool) -> None:
    run = new_run(store)
    walk(store, run.id, path)
    after = store.request_cancel(run.id[:12])
    assert after.status == status
    assert store.is_cancel_requested(run.id) is requested
    if status == "CANCELED":
        assert {s.status for s in after.steps} == {"CANCELED"}


def test_delete_run(store: Store) -> None:
    run = new_run(store)
    with pytest.raises(TrackingError, match=r"is PENDING\. Fix: cancel it"):
        store.delete_run(run.id)
    store.set_run_status(run.id, "CANCELED")
    store.delete_run(run.id)
    assert not Path(run.artifacts_dir).exists()
    with pytest.raises(RunNotFound):
        store.get_run(run.id)


def test_recover_a_run_whose_runner_died(store: Store) -> None:
    runner = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    run = new_run(store, steps=("prep", "train", "report"), runner_pid=runner.pid)
    store.set_run_status(run.id, "RUNNING")
    store.set_step_status(run.id, "prep", "RUNNING")
    store.set_step_status(run.id, "prep", "SUCCEEDED")
    store.set_step_status(run.id, "train", "RUNNING")
    store.log_metric(run.id, "loss", 0.5, step=0, source="train")
    live = new_run(store)  # runner: this process
    store.set_run_status(live.id, "RUNNING")
    assert store.recover() == []  # the runner still runs
    assert runner.communicate(b"", timeout=30) == (None, None)

    assert store.recover() == [run.id]
    reason = f"the runner process {runner.pid} on {run.runner_host} ended before the run finished"
    after = store.get_run(run.id)
    assert (after.status, after.error) == ("FAILED", reason)
    assert [(s.name, s.status, (s.error or {}).get("message")) for s in after.steps] == [
        ("prep", "SUCCEEDED", None),
        ("train", "FAILED", reason),
        ("report", "SKIPPED", reason),
    ]
    assert after.metrics == {"loss": 0.5}
    assert [e.data["status"] for e in store.events(run.id) if e.kind == "run"] == [
        "PENDING",
        "RUNNING",
        "FAILED",
    ]
    assert store.get_run(live.id).status == "RUNNING"
    assert store.recover() == []


@pytest.mark.parametrize(
    "column, value, recovered",
    [
        ("runner_started_at", 1.0, True),  # the pid lives, but is another process now
        ("runner_host", "elsewhere", False),  # another machine's runner: cannot tell
        ("runner_pid", None, False),
    ],
)
def test_recover_judges_only_what_it_can(
    store: Store, column: str, value: Any, recovered: bool
) -> None:
    run = new_run(store)
    with sqlite3.connect(store.db_path) as conn:
        conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run.id))
    assert store.recover() == ([run.id] if recovered else [])


def test_store_pickles_as_its_home(store: Store) -> None:
    run = new_run(store)
    assert pickle.loads(pickle.dumps(store)).get_run(run.id).id == run.id


# -- many writers at once -----------------------------------------------------------------------
WORKER = """
import sys, threading, time
from kfnb.tracking import Store

def lifecycle(store, tag, runs, shared, slowest):
    for i in range(runs):
        t0 = time.monotonic()
        run = store.create_run(kind="train", name=f"{tag}-{i}", backend="test", notebook=None,
                               notebook_hash=None, params={"i": i}, steps=["a", "b"])
        store.set_run_status(run.id, "RUNNING")
        for step in ("a", "b"):
            store.set_step_status(run.id, step, "RUNNING")
            for k in range(10):
                store.log_metric(run.id, "m", k, step=k, source=step)
            store.set_step_status(run.id, step, "SUCCEEDED")
        store.log_metric(shared, "shared", i, source=tag)
        store.set_run_status(run.id, "SUCCEEDED")
        slowest.append((time.monotonic() - t0) / 28)  # 28 store calls

if __name__ == "__main__":
    home, tag, threads, runs, shared = sys.argv[1:]
    store, slowest = Store(home), []
    workers = [threading.Thread(target=lifecycle, args=(store, f"{tag}.{t}", int(runs), shared,
                                                        slowest)) for t in range(int(threads))]
    for w in workers: w.start()
    for w in workers: w.join()
    print(max(slowest))
"""


def test_concurrent_processes_and_threads(tmp_path: Path) -> None:
    procs, threads, runs = 4, 4, 8
    store = Store(tmp_path / "home")
    shared = new_run(store, steps=()).id
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    lifecycle = runpy.run_path(str(script))["lifecycle"]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(store.home),
                f"p{p}",
                str(threads),
                str(runs),
                shared,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for p in range(procs)
    ]
    slowest: list[float] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:  # the CLI / server side: reads while everyone writes
        try:
            while not done.is_set():
                for r in store.list_runs(limit=5, kind="train"):
                    store.events(r.id)
        except BaseException as err:
            failures.append(err)

    local = [
        threading.Thread(target=lifecycle, args=(store, f"main.{t}", runs, shared, slowest))
        for t in range(threads)
    ]
    reader = threading.Thread(target=read)
    for t in [*local, reader]:
        t.start()
    for t in local:
        t.join(timeout=120)
    outputs = [c.communicate(timeout=120)[0] for c in children]
    done.set()
    reader.join(timeout=30)
    assert [c.returncode for c in children] == [0] * procs and not failures
    assert max([*slowest, *map(float, outputs)]) < 5.0  # an average call never waits long

    found = store.list_runs(limit=None, kind="train")
    tags = [f"{p}.{t}" for p in [*(f"p{i}" for i in range(procs)), "main"] for t in range(threads)]
    assert sorted(r.name for r in found) == sorted(
        f"{tag}-{i}" for tag in tags for i in range(runs)
    )
    for r in found:
        assert r.status == "SUCCEEDED" and r.metrics == {"m": 9.0}
        assert [(s.status, s.attempt) for s in r.steps] == [("SUCCEEDED", 1)] * 2
        assert len(store.metrics(r.id)) == 20 and len(store.events(r.id)) == 7
    by_id = sorted(found, key=lambda r: r.id)
    assert [r.created_at for r in by_id] == sorted(r.created_at for r in found)
    assert len({r.id for r in found}) == len(found)
    assert len(store.metrics(shared, "shared")) == len(tags) * runs
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_processes_opening_a_new_store_at_once(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    code = (
        "import sys; from kfnb.tracking import Store; Store(sys.argv[1]).create_run("
        "kind='pipeline', name='n', backend='b', notebook=None, notebook_hash=None, params={})"
    )
    children = [subprocess.Popen([sys.executable, "-c", code, str(home)]) for _ in range(6)]
    assert [c.wait(timeout=60) for c in children] == [0] * 6
    assert len(Store(home).list_runs(limit=None)) == 6


# -- schema -------------------------------------------------------------------------------------
# The version-1 schema exactly as the first kfnb with a run store created it.
V1 = """
CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
    status TEXT NOT NULL, backend TEXT NOT NULL, notebook TEXT, notebook_hash TEXT,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, error TEXT,
    parent_id TEXT REFERENCES runs(id) ON DELETE SET NULL, runner_pid INTEGER, runner_host TEXT);
CREATE TABLE steps (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL, position INTEGER NOT NULL, status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0, started_at REAL, finished_at REAL, output_notebook TEXT,
    log TEXT, error TEXT, gpus TEXT NOT NULL DEFAULT '[]', hash TEXT,
    PRIMARY KEY (run_id, name));
CREATE TABLE params (run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, name));
CREATE TABLE metrics (id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, name TEXT NOT NULL, value REAL,
    step INTEGER, source TEXT, timestamp REAL NOT NULL);
CREATE INDEX metrics_by_run ON metrics (run_id, name, id);
CREATE TABLE artifacts (id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, name TEXT NOT NULL,
    path TEXT NOT NULL, step TEXT, created_at REAL NOT NULL);
CREATE INDEX artifacts_by_run ON artifacts (run_id, id);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, time REAL NOT NULL,
    kind TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX events_by_run ON events (run_id, id);
"""


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
    return [
        (name, " ".join(sql.replace("(", " ( ").replace(")", " ) ").replace(",", " , ").split()))
        for name, sql in rows
    ]


def test_migration_1_is_still_what_shipped() -> None:
    old, now = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    old.executescript(V1)
    for statement in MIGRATIONS[0].statements:
        now.execute(statement)
    assert _schema(now) == _schema(old)


def test_opening_a_v1_store_migrates_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with sqlite3.connect(home / "kfnb.db") as conn:
        conn.executescript(V1)
        conn.execute(
            "INSERT INTO runs (id, kind, name, status, backend, created_at, runner_pid, "
            "runner_host) VALUES ('20250101-000000-000001', 'pipeline', 'old', "
            "'RUNNING', 'local', 1.0, ?, 'elsewhere')",
            (os.getpid(),),
        )
        conn.execute(
            "INSERT INTO steps (run_id, name, position, status, attempt) VALUES "
            "('20250101-000000-000001', 'a', 0, 'RUNNING', 1)"
        )
        conn.execute(
            "INSERT INTO metrics (run_id, name, value, timestamp) VALUES "
            "('20250101-000000-000001', 'acc', 0.5, 2.0)"
        )
        conn.execute("PRAGMA user_version = 1")
    store = Store(home)
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST == 5
        columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"cancel_requested_at", "runner_started_at", "remote", "spec"} <= columns
    assert "runner_identity" in columns
    assert {"runs_by_kind", "runs_by_parent", "runs_by_status", "steps_by_hash"} <= indexes
    old = store.get_run("2025")
    assert (old.name, old.status, old.metrics, old.step("a").attempt, old.remote) == (
        "old",
        "RUNNING",
        {"acc": 0.5},
        1,
        None,
    )
    assert not store.is_cancel_requested(old.id)
    assert store.request_cancel(old.id).status == "CANCELING"
    assert store.is_cancel_requested(old.id)
    assert [r.name for r in store.list_runs(kind="pipeline")] == ["old"]


@pytest.mark.parametrize(
    "prepare, message",
    [
        (
            lambda p: sqlite3.connect(p).execute(f"PRAGMA user_version = {LATEST + 1}"),
            rf"written by a newer kfnb \(schema {LATEST + 1};.*upgrade kfnb",
        ),
        (
            lambda p: p.write_bytes(b"not a database, just some text" * 100),
            "is not a usable kfnb database",
        ),
    ],
)
def test_stores_it_cannot_use(tmp_path: Path, prepare: Any, message: str) -> None:
    (tmp_path / "home").mkdir()
    prepare(tmp_path / "home" / "kfnb.db")
    with pytest.raises(StoreError, match=message):
        Store(tmp_path / "home")


# -- inside a kernel ----------------------------------------------------------------------------
@pytest.fixture
def outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KFNB_RUN_ID", "KFNB_STEP", "KFNB_METRICS_STDOUT", "KFNB_METRICS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(context, "_warned", False)


@pytest.fixture
def inside(store: Store, monkeypatch: pytest.MonkeyPatch, outside: None) -> Run:
    run = new_run(store, steps=("train",))
    monkeypatch.setenv("KFNB_HOME", str(store.home))
    monkeypatch.setenv("KFNB_RUN_ID", run.id)
    monkeypatch.setenv("KFNB_STEP", "train")
    return run


def test_logging_inside_a_run(store: Store, inside: Run) -> None:
    found = current_run()
    assert found is not None and (found[0].home, found[1], found[2]) == (
        store.home,
        inside.id,
        "train",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_metric("acc", np.float64(0.9))
        log_metric("loss", 0.5, step=3)
        log_param("lr", 0.01)
    run = store.get_run(inside.id)
    assert run.metrics == {"acc": 0.9, "loss": 0.5} and run.params["lr"] == 0.01
    assert [(m.name, m.step, m.source) for m in store.metrics(inside.id)] == [
        ("acc", None, "train"),
        ("loss", 3, "train"),
    ]


def test_logging_outside_a_run_warns_once(outside: None) -> None:
    assert current_run() is None
    with pytest.warns(
        context.NotInRunWarning, match=r"^kfnb.log_metric: not inside a kfnb run, nothing recorded$"
    ):
        log_metric("acc", 0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_metric("acc", 0.9)
        log_param("lr", 0.1)
    with pytest.raises(MetricValueError, match=r"metric 'acc'.*str"):
        log_metric("acc", "high")  # checked even where nothing is recorded


@pytest.mark.parametrize("in_run", [False, True])
def test_metrics_stdout_switch(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    in_run: bool,
) -> None:
    run = request.getfixturevalue("inside" if in_run else "outside")
    monkeypatch.setenv("KFNB_METRICS_STDOUT", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_metric("accuracy", 0.9)
        log_metric("loss", np.float32(0.25), step=1)
    assert capsys.readouterr().out == "accuracy=0.9\nloss=0.25\n"
    if in_run:
        assert len(request.getfixturevalue("store").metrics(run.id)) == 2


def test_a_remote_run_has_no_runner_and_recover_leaves_it(store: Store) -> None:
    run = store.create_run(
        kind="pipeline",
        name="p",
        backend="kfp",
        notebook=None,
        notebook_hash=None,
        params={},
        steps=["a"],
        remote={"host": "http://kfp", "namespace": "alice"},
    )
    assert run.runner_pid is None and run.remote == {"host": "http://kfp", "namespace": "alice"}
    store.set_run_status(run.id, "RUNNING")
    assert store.recover() == []
    updated = store.set_remote(run.id, id="abc", url="http://kfp/#/runs/details/abc")
    assert updated.remote == {
        "host": "http://kfp",
        "namespace": "alice",
        "id": "abc",
        "url": "http://kfp/#/runs/details/abc",
    }
    assert store.get_run(run.id).to_dict()["remote"]["id"] == "abc"
    local = store.create_run(
        kind="pipeline", name="p", backend="local", notebook=None, notebook_hash=None, params={}
    )
    with pytest.raises(TrackingError, match="not a remote run"):
        store.set_remote(local.id, id="x")


def test_metrics_file_sink_in_a_kfp_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: None
) -> None:
    """In a Kubeflow Pipelines pod there is no store: log_metric/log_param append JSON lines to
    $KFNB_METRICS_FILE, which the step's runner turns into its Metrics artifact."""
    sink = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("KFNB_METRICS_FILE", str(sink))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # recorded somewhere: no "not inside a run" warning
        log_metric("loss", np.float32(0.5), step=2)
        log_metric("acc", 0.75)
        log_param("lr", 0.1)
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert lines == [
        {"metric": "loss", "value": 0.5, "step": 2},
        {"metric": "acc", "value": 0.75, "step": None},
        {"param": "lr", "value": 0.1},
    ]
