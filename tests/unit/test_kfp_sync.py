"""Mapping what Kubeflow Pipelines reports onto the run store's state machine (kfp/sync.py):
polls that miss states, cached tasks, failures with KFP's message, and no step going back."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kfnb.backends.kfp.sync import apply
from kfnb.tracking import Store


def kfp_run(
    state: str,
    tasks: dict[str, str],
    error: str | None = None,
    task_errors: dict[str, str] | None = None,
) -> Any:
    errors = task_errors or {}
    details = [SimpleNamespace(display_name="root", state=state, error=None)]
    details += [
        SimpleNamespace(
            display_name=name,
            state=s,
            error=SimpleNamespace(message=errors[name]) if name in errors else None,
        )
        for name, s in tasks.items()
    ]
    return SimpleNamespace(
        state=state,
        error=SimpleNamespace(message=error) if error else None,
        run_details=SimpleNamespace(task_details=details),
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home")


def remote_run(store: Store) -> str:
    return store.create_run(
        kind="pipeline",
        name="p",
        backend="kfp",
        notebook=None,
        notebook_hash=None,
        params={},
        steps=["prep_data", "train"],
        remote={"id": "r1"},
    ).id


TASKS = {"prep_data": "prep-data", "train": "train"}


def statuses(store: Store, run_id: str) -> tuple[str, dict[str, str]]:
    record = store.get_run(run_id)
    return record.status, {s.name: s.status for s in record.steps}


def test_a_pending_run_stays_pending_until_kfp_starts_it(store: Store) -> None:
    rid = remote_run(store)
    assert apply(store, rid, kfp_run("PENDING", {}), TASKS) == "PENDING"
    assert apply(store, rid, kfp_run("RUNNING", {"prep-data": "RUNNING"}), TASKS) == "RUNNING"
    assert statuses(store, rid) == ("RUNNING", {"prep_data": "RUNNING", "train": "PENDING"})


def test_states_a_poll_missed_are_walked_through(store: Store) -> None:
    rid = remote_run(store)
    final = kfp_run("SUCCEEDED", {"prep-data": "CACHED", "train": "SUCCEEDED"})
    assert apply(store, rid, final, TASKS) == "SUCCEEDED"
    assert statuses(store, rid) == ("SUCCEEDED", {"prep_data": "CACHED", "train": "SUCCEEDED"})
    kinds = [
        (e.data.get("step"), e.data["status"])
        for e in store.events(rid)
        if e.kind in ("step", "run")
    ]
    assert ("train", "RUNNING") in kinds and ("train", "SUCCEEDED") in kinds
    assert ("prep_data", "RUNNING") not in kinds  # cached: it never ran
    # a finished run is final: a later (stale) report changes nothing
    assert apply(store, rid, kfp_run("RUNNING", {"train": "RUNNING"}), TASKS) == "SUCCEEDED"


def test_a_failure_keeps_kfps_message_and_skips_downstream(store: Store) -> None:
    rid = remote_run(store)
    failed = kfp_run(
        "FAILED",
        {"prep-data": "FAILED", "train": "SKIPPED"},
        error="task prep-data failed",
        task_errors={"prep-data": "exit code 1"},
    )
    assert apply(store, rid, failed, TASKS) == "FAILED"
    record = store.get_run(rid)
    assert record.error == "task prep-data failed"
    assert record.step("prep_data").error == {"message": "exit code 1"}
    assert record.step("train").status == "SKIPPED"


def test_canceling_does_not_go_back_to_running(store: Store) -> None:
    rid = remote_run(store)
    apply(store, rid, kfp_run("RUNNING", {"prep-data": "RUNNING"}), TASKS)
    store.request_cancel(rid)
    assert apply(store, rid, kfp_run("RUNNING", {"prep-data": "RUNNING"}), TASKS) == "CANCELING"
    done = kfp_run("CANCELED", {"prep-data": "CANCELED", "train": "SKIPPED"})
    assert apply(store, rid, done, TASKS) == "CANCELED"
    assert statuses(store, rid) == ("CANCELED", {"prep_data": "CANCELED", "train": "SKIPPED"})
