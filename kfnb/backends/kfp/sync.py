"""Bring what Kubeflow Pipelines reports about a run into the run store.

KFP's run (``V2beta1Run``) has a state and, in ``run_details.task_details``, one entry per task
(plus drivers and the root DAG, which kfnb ignores). Each kfnb step is the task named in the
compiled pipeline (``remote["tasks"]``); its state is mapped to kfnb's step statuses and moved
forward along the store's state machine (a poll may miss intermediate states: a task seen
SUCCEEDED that was PENDING last time goes through RUNNING). Nothing ever moves backwards: a run
kfnb marked CANCELING stays so until KFP says it ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...tracking import TERMINAL_RUN, TERMINAL_STEP, Store
from ...tracking.models import RUN_TRANSITIONS, STEP_TRANSITIONS

RUN_STATES: Mapping[str, str] = {
    "RUNTIME_STATE_UNSPECIFIED": "PENDING",
    "PENDING": "PENDING",
    "RUNNING": "RUNNING",
    "PAUSED": "RUNNING",
    "SUCCEEDED": "SUCCEEDED",
    "SKIPPED": "SUCCEEDED",
    "FAILED": "FAILED",
    "CANCELING": "CANCELING",
    "CANCELED": "CANCELED",
}
TASK_STATES: Mapping[str, str] = {
    "RUNTIME_STATE_UNSPECIFIED": "PENDING",
    "PENDING": "PENDING",
    "RUNNING": "RUNNING",
    "PAUSED": "RUNNING",
    "CANCELING": "RUNNING",
    "SUCCEEDED": "SUCCEEDED",
    "CACHED": "CACHED",
    "SKIPPED": "SKIPPED",
    "FAILED": "FAILED",
    "CANCELED": "CANCELED",
}


def apply(store: Store, run_id: str, kfp_run: Any, tasks: Mapping[str, str]) -> str:
    """Record ``kfp_run`` (a ``V2beta1Run``) into run ``run_id``; return the run's status."""
    record = store.get_run(run_id)
    if record.status in TERMINAL_RUN:
        return record.status
    target = RUN_STATES.get(str(kfp_run.state or "PENDING"), "RUNNING")
    details = getattr(kfp_run, "run_details", None)
    by_task = {
        str(t.display_name): t
        for t in (getattr(details, "task_details", None) or [])
        if getattr(t, "display_name", None)
    }
    steps_moving = False
    for step in record.steps:
        task = by_task.get(tasks.get(step.name, step.name)) or by_task.get(step.name)
        if task is None or step.status in TERMINAL_STEP:
            continue
        want = TASK_STATES.get(str(task.state or "PENDING"), "RUNNING")
        if want != "PENDING":
            steps_moving = True
            if record.status == "PENDING":
                _run_to(store, run_id, "RUNNING", None)
                record = store.get_run(run_id)
        _step_to(store, run_id, step.name, step.status, want, _error(task))
    if target == "PENDING" and not steps_moving:
        return record.status
    error = _error(kfp_run)
    _run_to(store, run_id, target, error["message"] if error else None)
    return store.get_run(run_id).status


def _run_to(store: Store, run_id: str, want: str, error: str | None) -> None:
    status = store.get_run(run_id).status
    if want == status:
        return
    if want in TERMINAL_RUN and status == "PENDING" and want not in RUN_TRANSITIONS["PENDING"]:
        store.set_run_status(run_id, "RUNNING")
        status = "RUNNING"
    if want in RUN_TRANSITIONS.get(status, frozenset()):
        store.set_run_status(run_id, want, error=error)  # type: ignore[arg-type]


def _step_to(
    store: Store, run_id: str, step: str, status: str, want: str, error: dict[str, Any] | None
) -> None:
    if want == status or want == "PENDING":
        return
    if want not in STEP_TRANSITIONS.get(status, frozenset()):
        if "RUNNING" not in STEP_TRANSITIONS.get(status, frozenset()):
            return
        store.set_step_status(run_id, step, "RUNNING")
        status = "RUNNING"
    if want != status and want in STEP_TRANSITIONS.get(status, frozenset()):
        store.set_step_status(
            run_id,
            step,
            want,  # type: ignore[arg-type]
            error=error if want == "FAILED" else None,
        )


def _error(obj: Any) -> dict[str, Any] | None:
    err = getattr(obj, "error", None)
    message = getattr(err, "message", None) if err is not None else None
    return {"message": str(message)} if message else None
