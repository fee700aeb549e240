"""Steps of a run: their status transitions, late additions, and the step cache's lookup.

A step moves by ``STEP_TRANSITIONS`` (``kfnb.tracking.models``) only while its run has not ended;
each change appends a ``"step"`` event. ``write_step`` is the one place a step row changes:
RUNNING counts an attempt, sets ``started_at`` and clears the last attempt's end and error; an
ending status sets ``finished_at``. ``close_steps`` ends the steps a run leaves open when it ends
(``CANCELED`` for a cancelled run, else ``FAILED`` if running, ``SKIPPED`` if pending), so a
finished run never shows a step still running.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .db import Database
from .errors import InvalidTransition, StepNotFound, TrackingError
from .ids import resolve
from .loading import step_from_row
from .models import STEP_STATUSES, STEP_TRANSITIONS, TERMINAL_RUN, TERMINAL_STEP, StepRun
from .records import append_event
from .values import check_names, check_status, to_json


def run_status(conn: sqlite3.Connection, run_id: str) -> tuple[str, str]:
    """``(full id, status)`` of the run ``run_id`` names."""
    rid = resolve(conn, run_id)
    return rid, conn.execute("SELECT status FROM runs WHERE id = ?", (rid,)).fetchone()[0]


def step_row(conn: sqlite3.Connection, rid: str, step: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM steps WHERE run_id = ? AND name = ?", (rid, step)).fetchone()
    if row is None:
        known = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM steps WHERE run_id = ? ORDER BY position", (rid,)
            )
        ]
        raise StepNotFound(rid, step, known)
    return row


def _error_dict(error: Any) -> dict[str, Any]:
    return dict(error) if isinstance(error, Mapping) else {"message": str(error)}


def write_step(
    conn: sqlite3.Connection,
    rid: str,
    row: sqlite3.Row,
    status: str,
    fields: Mapping[str, Any],
    now: float,
) -> None:
    """Set step ``row`` of run ``rid`` to ``status`` (and ``fields`` given); append its event."""
    sets: dict[str, Any] = {"status": status}
    attempt = row["attempt"]
    if status == "RUNNING":
        attempt += 1
        sets.update(attempt=attempt, started_at=now, finished_at=None, error=None)
    elif status in TERMINAL_STEP:
        sets["finished_at"] = now
    elif status == "PENDING":
        sets["finished_at"] = None
    for key in ("output_notebook", "log", "hash", "cached_from"):
        if fields.get(key) is not None:
            sets[key] = str(fields[key])
    if fields.get("gpus") is not None:
        sets["gpus"] = to_json([str(g) for g in fields["gpus"]])
    error = fields.get("error")
    if error is not None:
        error = _error_dict(error)
        sets["error"] = to_json(error)
    conn.execute(
        f"UPDATE steps SET {', '.join(f'{k} = ?' for k in sets)} WHERE run_id = ? AND name = ?",
        (*sets.values(), rid, row["name"]),
    )
    data = {"step": row["name"], "status": status, "attempt": attempt}
    append_event(conn, rid, "step", {**data, **({"error": error} if error else {})}, now)


def close_steps(
    conn: sqlite3.Connection, rid: str, run_status: str, reason: str | None, now: float
) -> None:
    """End the steps run ``rid`` leaves open as it moves to ``run_status``."""
    rows = conn.execute(
        "SELECT * FROM steps WHERE run_id = ? AND status IN "
        "('PENDING', 'RUNNING') ORDER BY position",
        (rid,),
    ).fetchall()
    for row in rows:
        running = row["status"] == "RUNNING"
        if run_status == "CANCELED":
            new, message = "CANCELED", reason or "the run was cancelled"
        elif running:
            new = "FAILED"
            message = reason or f"the run ended ({run_status}) while this step was running"
        else:
            new = "SKIPPED"
            message = reason or f"the run ended ({run_status}) before this step started"
        write_step(conn, rid, row, new, {"error": {"message": message}}, now)


def _check_step_transition(rid: str, step: str, old: str, new: str, run_status: str) -> None:
    if run_status in TERMINAL_RUN:
        raise InvalidTransition(
            rid, old, new, step=step, reason=f"the run already ended ({run_status})"
        )
    allowed = STEP_TRANSITIONS.get(old, frozenset())
    if new not in allowed:
        reason = (
            "it already ended"
            if old in TERMINAL_STEP and not allowed
            else f"from {old} it may go to {', '.join(sorted(allowed))}"
        )
        raise InvalidTransition(rid, old, new, step=step, reason=reason)


class Steps:
    """The steps of the runs in ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, run_id: str, step: str) -> None:
        check_names([step], "step")
        with self._db.write() as conn:
            rid, status = run_status(conn, run_id)
            if status in TERMINAL_RUN:
                raise TrackingError(
                    f"cannot add step {step!r} to run {rid}: the run already ended ({status})"
                )
            if conn.execute(
                "SELECT 1 FROM steps WHERE run_id = ? AND name = ?", (rid, step)
            ).fetchone():
                raise TrackingError(f"run {rid} already has a step {step!r}")
            conn.execute(
                "INSERT INTO steps (run_id, name, position, status) VALUES (?, ?, "
                "(SELECT coalesce(max(position), -1) + 1 FROM steps WHERE run_id = ?), 'PENDING')",
                (rid, step, rid),
            )
            data = {"step": step, "status": "PENDING", "attempt": 0}
            append_event(conn, rid, "step", data, time.time())

    def set_status(self, run_id: str, step: str, status: str, fields: Mapping[str, Any]) -> StepRun:
        check_status(status, STEP_STATUSES, "step")
        with self._db.write() as conn:
            rid, status_of_run = run_status(conn, run_id)
            row = step_row(conn, rid, step)
            _check_step_transition(rid, step, row["status"], status, status_of_run)
            write_step(conn, rid, row, status, fields, time.time())
            return step_from_row(step_row(conn, rid, step))

    def cache_candidates(
        self, hash: str, *, exclude_run: str | None = None, limit: int = 5
    ) -> list[StepRun]:
        with self._db.read() as conn:
            rows: Sequence[sqlite3.Row] = conn.execute(
                "SELECT * FROM steps WHERE hash = ? AND status IN ('SUCCEEDED', 'CACHED') "
                "AND run_id IS NOT ? ORDER BY finished_at DESC LIMIT ?",
                (hash, exclude_run, limit),
            ).fetchall()
        return [step_from_row(r) for r in rows]
