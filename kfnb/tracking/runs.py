"""Runs: creating them, their status transitions, finding them, and the tree they form.

A run is created ``PENDING`` with its parameters, steps, spec and runner (pid, start time, host,
and the identity ``liveness`` checks later), each in one write transaction. Its ``kind`` is one of
``RUN_KINDS`` and its parent, if any, a run whose kind may have that kind of child
(``CHILD_KINDS``); anything else is refused with the kinds that would do.

``transition_run`` is the one place a run's status changes (``RUN_TRANSITIONS``): RUNNING sets
``started_at``, an ending status ``finished_at`` and closes the steps left open, CANCELING notes
when the cancel was asked; each change appends a ``"run"`` event.

Run lists are newest first (ids sort by creation); ``children`` and ``tree`` read the run tree,
oldest first, the whole subtree in one recursive query.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db import Database
from .errors import InvalidTransition, StoreError, TrackingError
from .ids import new_run_id, resolve
from .liveness import record
from .loading import load, load_rows
from .models import (
    RESUMABLE_KINDS,
    RUN_STATUSES,
    RUN_TRANSITIONS,
    TERMINAL_RUN,
    Run,
    RunStatus,
    RunTree,
    check_child,
    check_kind,
)
from .records import append_event, insert_params
from .steps import close_steps, run_status
from .values import check_names, check_status, from_json, to_json


def transition_run(
    conn: sqlite3.Connection,
    rid: str,
    old: str,
    new: str,
    error: str | None,
    now: float,
    *,
    step_reason: str | None = None,
) -> None:
    """Move run ``rid`` from ``old`` to ``new`` inside the caller's write transaction."""
    allowed = RUN_TRANSITIONS.get(old, frozenset())
    if new not in allowed:
        reason = (
            f"it already ended ({old})"
            if old in TERMINAL_RUN
            else f"from {old} it may go to {', '.join(sorted(allowed))}"
        )
        raise InvalidTransition(rid, old, new, reason=reason)
    if new in TERMINAL_RUN:
        close_steps(conn, rid, new, step_reason, now)
    sets: dict[str, Any] = {"status": new}
    if new == "RUNNING":
        sets["started_at"] = now
    if new in TERMINAL_RUN:
        sets["finished_at"] = now
    if new == "CANCELING":
        sets["cancel_requested_at"] = conn.execute(
            "SELECT coalesce(cancel_requested_at, ?) FROM runs WHERE id = ?", (now, rid)
        ).fetchone()[0]
    if error is not None:
        sets["error"] = error
    conn.execute(
        f"UPDATE runs SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
        (*sets.values(), rid),
    )
    append_event(conn, rid, "run", {"status": new, **({"error": error} if error else {})}, now)


@dataclass(frozen=True)
class RunFilter:
    """What ``Runs.find``/``Runs.count`` select; ``None`` means any."""

    kind: str | None = None
    parent_id: str | None = None
    roots_only: bool = False
    notebook: str | Path | None = None
    status: str | Iterable[str] | None = None
    remote: bool | None = None

    def where(self, conn: sqlite3.Connection) -> tuple[str, list[Any]]:
        """The ``WHERE`` clause (empty if none) and its arguments."""
        where: list[str] = []
        args: list[Any] = []
        if self.kind is not None:
            where.append("kind = ?")
            args.append(check_kind(self.kind))
        if self.parent_id is not None and self.roots_only:
            raise TrackingError(
                "a run list cannot show both the children of a run and top-level runs only",
                fix="pass parent_id or roots_only, not both",
            )
        if self.parent_id is not None:
            where.append("parent_id = ?")
            args.append(resolve(conn, self.parent_id))
        if self.roots_only:
            where.append("parent_id IS NULL")
        if self.notebook is not None:
            where.append("notebook = ?")
            args.append(str(self.notebook))
        if self.status is not None:
            wanted = [self.status] if isinstance(self.status, str) else list(self.status)
            for s in wanted:
                check_status(s, RUN_STATUSES, "run")
            where.append(f"status IN ({', '.join('?' * len(wanted))})" if wanted else "0")
            args.extend(wanted)
        if self.remote is not None:
            where.append("remote IS NOT NULL" if self.remote else "remote IS NULL")
        return (" WHERE " + " AND ".join(where) if where else ""), args


class Runs:
    """The runs in ``db``; ``runs_dir`` holds an artifacts folder per run."""

    def __init__(self, db: Database, runs_dir: Path) -> None:
        self._db = db
        self.runs_dir = runs_dir

    def create(
        self,
        *,
        kind: str,
        name: str,
        backend: str,
        notebook: str | None,
        notebook_hash: str | None,
        params: Mapping[str, Any],
        steps: Sequence[str],
        parent_id: str | None,
        runner_pid: int | None,
        remote: Mapping[str, Any] | None,
        spec: Mapping[str, Any] | None,
    ) -> Run:
        check_kind(kind)
        step_names = check_names(steps, "step")
        check_names(params, "parameter")
        pid = (
            None if remote is not None else (os.getpid() if runner_pid is None else int(runner_pid))
        )
        started, identity = record(pid) if pid is not None else (None, None)
        with self._db.write() as conn:
            parent = None if parent_id is None else self._parent(conn, parent_id, kind)
            now = time.time()
            newest = conn.execute("SELECT max(id) FROM runs").fetchone()[0]
            run_id = new_run_id(now, newest)
            conn.execute(
                "INSERT INTO runs (id, kind, name, status, backend, notebook, notebook_hash, "
                "created_at, parent_id, runner_pid, runner_host, runner_started_at, "
                "runner_identity, remote, spec) "
                "VALUES (?, ?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    kind,
                    name,
                    backend,
                    notebook,
                    notebook_hash,
                    now,
                    parent,
                    pid,
                    socket.gethostname(),
                    started,
                    identity,
                    None if remote is None else to_json(dict(remote)),
                    None if spec is None else to_json(dict(spec)),
                ),
            )
            insert_params(conn, run_id, params)
            conn.executemany(
                "INSERT INTO steps (run_id, name, position, status) VALUES (?, ?, ?, 'PENDING')",
                [(run_id, s, i) for i, s in enumerate(step_names)],
            )
            append_event(conn, run_id, "run", {"status": "PENDING"}, now)
            self._make_folder(run_id)
            return load(conn, run_id, self.runs_dir)

    def _parent(self, conn: sqlite3.Connection, parent_id: str, kind: str) -> str:
        rid = resolve(conn, parent_id)
        parent_kind = conn.execute("SELECT kind FROM runs WHERE id = ?", (rid,)).fetchone()[0]
        check_child(rid, parent_kind, kind)
        return rid

    def _make_folder(self, run_id: str) -> None:
        folder = self.runs_dir / run_id
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"cannot create the artifacts folder of run {run_id}: {err}",
                fix="make the run store folder writable, or point KFNB_HOME at another folder",
                where=str(folder),
            ) from err

    def set_remote(self, run_id: str, fields: Mapping[str, Any]) -> Run:
        with self._db.write() as conn:
            rid = resolve(conn, run_id)
            row = conn.execute("SELECT remote FROM runs WHERE id = ?", (rid,)).fetchone()
            if row["remote"] is None:
                raise TrackingError(f"run {rid} is not a remote run")
            remote = {**from_json(row["remote"]), **fields}
            conn.execute("UPDATE runs SET remote = ? WHERE id = ?", (to_json(remote), rid))
            return load(conn, rid, self.runs_dir)

    def set_runner(self, run_id: str, pid: int) -> Run:
        with self._db.write() as conn:
            rid = resolve(conn, run_id)
            started, identity = record(pid)
            conn.execute(
                "UPDATE runs SET runner_pid = ?, runner_host = ?, runner_started_at = ?, "
                "runner_identity = ? WHERE id = ?",
                (pid, socket.gethostname(), started, identity, rid),
            )
            return load(conn, rid, self.runs_dir)

    def set_spec(self, run_id: str, spec: Mapping[str, Any]) -> Run:
        with self._db.write() as conn:
            rid = resolve(conn, run_id)
            conn.execute("UPDATE runs SET spec = ? WHERE id = ?", (to_json(dict(spec)), rid))
            append_event(conn, rid, "spec", {}, time.time())
            return load(conn, rid, self.runs_dir)

    def resume(self, run_id: str, pid: int) -> Run:
        """Back to RUNNING under runner ``pid``: a stopped study or sweep going on. A remote
        one (a cluster drives it: a Katib study) gets no runner, so ``recover()`` leaves it to
        its backend as before."""
        with self._db.write() as conn:
            rid, status = run_status(conn, run_id)
            kind, remote = conn.execute(
                "SELECT kind, remote FROM runs WHERE id = ?", (rid,)
            ).fetchone()
            if kind not in RESUMABLE_KINDS:
                raise InvalidTransition(
                    rid, status, "RUNNING", reason=f"a {kind} run cannot be resumed"
                )
            # a study whose budget grew (Study.add_trials) goes on after it succeeded, too
            grown = kind == "tune" and status == "SUCCEEDED"
            if status not in ("FAILED", "CANCELED") and not grown:
                raise InvalidTransition(
                    rid,
                    status,
                    "RUNNING",
                    reason="only a stopped (CANCELED) or failed run, or a finished study, "
                    "is resumed",
                )
            if remote is not None:
                conn.execute(
                    "UPDATE runs SET status = 'RUNNING', finished_at = NULL, error = NULL, "
                    "cancel_requested_at = NULL WHERE id = ?",
                    (rid,),
                )
            else:
                started, identity = record(pid)
                conn.execute(
                    "UPDATE runs SET status = 'RUNNING', finished_at = NULL, error = NULL, "
                    "cancel_requested_at = NULL, runner_pid = ?, runner_host = ?, "
                    "runner_started_at = ?, runner_identity = ? WHERE id = ?",
                    (pid, socket.gethostname(), started, identity, rid),
                )
            append_event(conn, rid, "run", {"status": "RUNNING", "resumed": True}, time.time())
            return load(conn, rid, self.runs_dir)

    def get(self, run_id: str) -> Run:
        with self._db.read() as conn:
            return load(conn, resolve(conn, run_id), self.runs_dir)

    def resolve_id(self, run_id: str) -> str:
        with self._db.read() as conn:
            return resolve(conn, run_id)

    def find(self, selected: RunFilter, *, limit: int | None, offset: int) -> list[Run]:
        with self._db.read() as conn:
            where, args = selected.where(conn)
            sql = "SELECT * FROM runs" + where + " ORDER BY id DESC LIMIT ? OFFSET ?"
            rows = conn.execute(
                sql, (*args, limit if limit and limit > 0 else -1, max(int(offset), 0))
            ).fetchall()
            return load_rows(conn, rows, self.runs_dir)

    def count(self, selected: RunFilter) -> int:
        with self._db.read() as conn:
            where, args = selected.where(conn)
            return int(conn.execute("SELECT count(*) FROM runs" + where, args).fetchone()[0])

    def children(self, run_id: str) -> list[Run]:
        with self._db.read() as conn:
            rid = resolve(conn, run_id)
            rows = conn.execute(
                "SELECT * FROM runs WHERE parent_id = ? ORDER BY id", (rid,)
            ).fetchall()
            return load_rows(conn, rows, self.runs_dir)

    def tree(self, run_id: str) -> RunTree:
        with self._db.read() as conn:
            rid = resolve(conn, run_id)
            rows = conn.execute(
                "WITH RECURSIVE sub(id) AS (SELECT ? UNION "
                "SELECT runs.id FROM runs JOIN sub ON runs.parent_id = sub.id) "
                "SELECT * FROM runs WHERE id IN (SELECT id FROM sub) ORDER BY id",
                (rid,),
            ).fetchall()
            runs = load_rows(conn, rows, self.runs_dir)
        nodes = {r.id: RunTree(r) for r in runs}
        for run in runs:  # oldest first, so each node's children come in creation order
            if run.id != rid and run.parent_id in nodes:
                nodes[run.parent_id].children.append(nodes[run.id])
        return nodes[rid]

    def set_status(self, run_id: str, status: RunStatus, error: str | None) -> Run:
        check_status(status, RUN_STATUSES, "run")
        with self._db.write() as conn:
            rid, old = run_status(conn, run_id)
            transition_run(conn, rid, old, status, error, time.time())
            return load(conn, rid, self.runs_dir)

    def request_cancel(self, run_id: str) -> Run:
        with self._db.write() as conn:
            rid, status = run_status(conn, run_id)
            now = time.time()
            if status in ("RUNNING", "PENDING"):
                conn.execute("UPDATE runs SET cancel_requested_at = ? WHERE id = ?", (now, rid))
                new: RunStatus = "CANCELING" if status == "RUNNING" else "CANCELED"
                transition_run(conn, rid, status, new, None, now)
            return load(conn, rid, self.runs_dir)

    def is_cancel_requested(self, run_id: str) -> bool:
        with self._db.read() as conn:
            rid = resolve(conn, run_id)
            row = conn.execute(
                "SELECT cancel_requested_at, status FROM runs WHERE id = ?", (rid,)
            ).fetchone()
            return row["cancel_requested_at"] is not None or row["status"] == "CANCELING"

    def delete(self, run_id: str) -> None:
        with self._db.write() as conn:
            rid, status = run_status(conn, run_id)
            if status not in TERMINAL_RUN:
                raise TrackingError(
                    f"run {rid} is {status}", fix=f"cancel it before deleting it: kfnb cancel {rid}"
                )
            conn.execute("DELETE FROM runs WHERE id = ?", (rid,))
        shutil.rmtree(self.runs_dir / rid, ignore_errors=True)
