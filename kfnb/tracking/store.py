"""The run store: every run kfnb starts, seen alike by the CLI, notebook kernels and the server.

A store is a folder (``KFNB_HOME``, else ``~/.kfnb``) holding ``kfnb.db`` (SQLite, see
``kfnb.tracking.db`` for how concurrent writers share it) and ``runs/<run_id>/``, the run's
artifacts folder. Each ``Store`` method is one short transaction, so a ``Store`` may be used from
any thread, and any number of processes may open the same folder.

Every method that takes a run id also takes a unique prefix of one (``RunNotFound`` when none
matches, ``AmbiguousRunId`` when several do). Status changes follow the state machine in
``kfnb.tracking.models`` (``InvalidTransition`` otherwise) and each appends an event, which
live UIs poll with ``events(run_id, after=last_id)``. When a run ends, steps it left open are
closed (``CANCELED`` for a cancelled run, else ``FAILED`` if running, ``SKIPPED`` if pending),
so a finished run never shows a step still running.

``recover()`` ends the runs whose runner process died (killed, machine slept and the kernel
OOM-killed it...) as ``FAILED``; it keeps everything they recorded.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .db import Database
from .errors import (
    AmbiguousRunId,
    InvalidTransition,
    RunNotFound,
    StepNotFound,
    StoreError,
    TrackingError,
)
from .ids import new_run_id, prefix_range
from .models import (
    RUN_STATUSES,
    RUN_TRANSITIONS,
    STEP_STATUSES,
    STEP_TRANSITIONS,
    TERMINAL_RUN,
    TERMINAL_STEP,
    Event,
    Metric,
    Run,
    RunStatus,
    StepRun,
    StepStatus,
)
from .processes import is_alive, start_time
from .values import from_json, metric_value, step_index, to_json

HOME_ENV = "KFNB_HOME"
_OPEN = tuple(s for s in RUN_STATUSES if s not in TERMINAL_RUN)
_CHUNK = 500  # ids per ``IN (...)``: well under SQLite's limit on query variables


def default_home() -> Path:
    """``$KFNB_HOME`` if set, else ``~/.kfnb``; created if missing."""
    raw = os.environ.get(HOME_ENV, "").strip()
    home = Path(raw or "~/.kfnb").expanduser().resolve()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(
            f"cannot create the kfnb home folder {home}: {err}. Fix: set "
            f"{HOME_ENV} to a writable folder"
        ) from err
    return home


def _names(values: Iterable[str], what: str) -> list[str]:
    names = list(values)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TrackingError(f"a {what} name must be a non-empty string, got {name!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise TrackingError(f"{what} names must be unique; repeated: {', '.join(dup)}")
    return names


def _check_status(status: str, known: tuple[str, ...], what: str) -> None:
    if status not in known:
        raise TrackingError(f"unknown {what} status {status!r}; one of {', '.join(known)}")


def _error_dict(error: Any) -> dict[str, Any]:
    return dict(error) if isinstance(error, Mapping) else {"message": str(error)}


class Store:
    """The run store in the folder ``home`` (default: ``default_home()``)."""

    def __init__(self, home: str | Path | None = None) -> None:
        if home is None:
            self.home = default_home()
        else:
            self.home = Path(home).expanduser().resolve()
            try:
                self.home.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(f"cannot create the run store folder {self.home}: {err}") from err
        self.db_path = self.home / "kfnb.db"
        self.runs_dir = self.home / "runs"
        self._db = Database(self.db_path)

    def __repr__(self) -> str:
        return f"Store({str(self.home)!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: another process opens its own
        return (Store, (self.home,))

    def close(self) -> None:
        """Close the calling thread's connection (the store reopens it when used again)."""
        self._db.close()

    # -- runs -------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        kind: str,
        name: str,
        backend: str,
        notebook: str | None,
        notebook_hash: str | None,
        params: Mapping[str, Any],
        steps: Sequence[str] = (),
        parent_id: str | None = None,
        runner_pid: int | None = None,
        remote: Mapping[str, Any] | None = None,
        spec: Mapping[str, Any] | None = None,
    ) -> Run:
        """Record a new ``PENDING`` run (its steps ``PENDING``) and create its artifacts folder.

        ``spec`` is what the run runs (``kfnb.spec``: for a pipeline its IR with edges), kept with
        the run so it is drawn as it ran whatever happens to the notebook later.

        ``runner_pid`` is the process that will drive the run (default: this one), which
        ``recover()`` checks on later. A ``remote`` run (one a cluster drives, e.g. on KFP) has
        no runner here: ``recover()`` leaves it alone, its backend reads its status from there.
        """
        step_names = _names(steps, "step")
        _names(params, "parameter")
        pid: int | None = None
        if remote is None:
            pid = os.getpid() if runner_pid is None else int(runner_pid)
        runner_started = start_time(pid) if pid is not None else None
        with self._db.write() as conn:
            parent = None if parent_id is None else self._resolve(conn, parent_id)
            now = time.time()
            newest = conn.execute("SELECT max(id) FROM runs").fetchone()[0]
            run_id = new_run_id(now, newest)
            conn.execute(
                "INSERT INTO runs (id, kind, name, status, backend, notebook, notebook_hash, "
                "created_at, parent_id, runner_pid, runner_host, runner_started_at, remote, spec) "
                "VALUES (?, ?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    runner_started,
                    None if remote is None else to_json(dict(remote)),
                    None if spec is None else to_json(dict(spec)),
                ),
            )
            conn.executemany(
                "INSERT INTO params (run_id, name, value) VALUES (?, ?, ?)",
                [(run_id, k, to_json(v)) for k, v in params.items()],
            )
            conn.executemany(
                "INSERT INTO steps (run_id, name, position, status) VALUES (?, ?, ?, 'PENDING')",
                [(run_id, s, i) for i, s in enumerate(step_names)],
            )
            self._event(conn, run_id, "run", {"status": "PENDING"}, now)
            try:
                (self.runs_dir / run_id).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(
                    f"cannot create the artifacts folder of run {run_id}: {err}"
                ) from err
            return self._load(conn, run_id)

    def add_step(self, run_id: str, step: str) -> None:
        """Add a ``PENDING`` step to a run that has not ended (steps that appear later: trials)."""
        _names([step], "step")
        with self._db.write() as conn:
            rid, status = self._run_status(conn, run_id)
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
            self._event(
                conn, rid, "step", {"step": step, "status": "PENDING", "attempt": 0}, time.time()
            )

    def set_remote(self, run_id: str, **fields: Any) -> Run:
        """Add ``fields`` to a remote run's ``remote`` record (its id there, once known...)."""
        with self._db.write() as conn:
            rid = self._resolve(conn, run_id)
            row = conn.execute("SELECT remote FROM runs WHERE id = ?", (rid,)).fetchone()
            if row["remote"] is None:
                raise TrackingError(f"run {rid} is not a remote run")
            remote = {**from_json(row["remote"]), **fields}
            conn.execute("UPDATE runs SET remote = ? WHERE id = ?", (to_json(remote), rid))
            return self._load(conn, rid)

    def get_run(self, run_id: str) -> Run:
        with self._db.read() as conn:
            return self._load(conn, self._resolve(conn, run_id))

    def resolve_id(self, run_id: str) -> str:
        """The full id of the run that ``run_id`` (an id or a unique prefix) names."""
        with self._db.read() as conn:
            return self._resolve(conn, run_id)

    def list_runs(
        self,
        *,
        limit: int | None = 20,
        kind: str | None = None,
        parent_id: str | None = None,
        notebook: str | Path | None = None,
        status: str | Iterable[str] | None = None,
        remote: bool | None = None,
        offset: int = 0,
    ) -> list[Run]:
        """Runs, newest first; ``limit`` ``None`` (or 0) for all of them, after skipping
        ``offset``. ``notebook`` (the path as recorded: absolute), ``status`` (one or several)
        and ``remote`` (only runs a cluster drives, or only the others) filter."""
        with self._db.read() as conn:
            where, args = self._run_filter(
                conn,
                kind=kind,
                parent_id=parent_id,
                notebook=notebook,
                status=status,
                remote=remote,
            )
            sql = "SELECT * FROM runs" + where + " ORDER BY id DESC LIMIT ? OFFSET ?"
            rows = conn.execute(
                sql, (*args, limit if limit and limit > 0 else -1, max(int(offset), 0))
            ).fetchall()
            return self._load_rows(conn, rows)

    def count_runs(
        self,
        *,
        kind: str | None = None,
        parent_id: str | None = None,
        notebook: str | Path | None = None,
        status: str | Iterable[str] | None = None,
        remote: bool | None = None,
    ) -> int:
        """How many runs ``list_runs`` with the same filters and no limit returns."""
        with self._db.read() as conn:
            where, args = self._run_filter(
                conn,
                kind=kind,
                parent_id=parent_id,
                notebook=notebook,
                status=status,
                remote=remote,
            )
            return int(conn.execute("SELECT count(*) FROM runs" + where, args).fetchone()[0])

    def _run_filter(
        self,
        conn: sqlite3.Connection,
        *,
        kind: str | None,
        parent_id: str | None,
        notebook: str | Path | None,
        status: str | Iterable[str] | None,
        remote: bool | None,
    ) -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if parent_id is not None:
            where.append("parent_id = ?")
            args.append(self._resolve(conn, parent_id))
        if notebook is not None:
            where.append("notebook = ?")
            args.append(str(notebook))
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            for s in wanted:
                _check_status(s, RUN_STATUSES, "run")
            where.append(f"status IN ({', '.join('?' * len(wanted))})" if wanted else "0")
            args.extend(wanted)
        if remote is not None:
            where.append("remote IS NOT NULL" if remote else "remote IS NULL")
        return (" WHERE " + " AND ".join(where) if where else ""), args

    def set_run_status(self, run_id: str, status: RunStatus, *, error: str | None = None) -> Run:
        """Move a run to ``status`` (``started_at`` on RUNNING, ``finished_at`` when it ends)."""
        _check_status(status, RUN_STATUSES, "run")
        with self._db.write() as conn:
            rid, old = self._run_status(conn, run_id)
            self._transition_run(conn, rid, old, status, error, time.time())
            return self._load(conn, rid)

    def set_step_status(
        self,
        run_id: str,
        step: str,
        status: StepStatus,
        *,
        error: dict[str, Any] | None = None,
        output_notebook: str | None = None,
        log: str | None = None,
        gpus: Sequence[str] | None = None,
        hash: str | None = None,
        cached_from: str | None = None,
    ) -> StepRun:
        """Move a step to ``status``; the other fields are updated where given.

        RUNNING counts an attempt, sets ``started_at`` and clears the previous attempt's end
        and error; an ending status sets ``finished_at``.
        """
        _check_status(status, STEP_STATUSES, "step")
        with self._db.write() as conn:
            rid, run_status = self._run_status(conn, run_id)
            row = self._step_row(conn, rid, step)
            old = row["status"]
            if run_status in TERMINAL_RUN:
                raise InvalidTransition(
                    rid, old, status, step=step, reason=f"the run already ended ({run_status})"
                )
            allowed = STEP_TRANSITIONS.get(old, frozenset())
            if status not in allowed:
                reason = (
                    "it already ended"
                    if old in TERMINAL_STEP and not allowed
                    else f"from {old} it may go to {', '.join(sorted(allowed))}"
                )
                raise InvalidTransition(rid, old, status, step=step, reason=reason)
            fields = {
                "error": error,
                "output_notebook": output_notebook,
                "log": log,
                "gpus": gpus,
                "hash": hash,
                "cached_from": cached_from,
            }
            self._write_step(conn, rid, row, status, fields, time.time())
            return self._step(self._step_row(conn, rid, step))

    def cache_candidates(
        self, hash: str, *, exclude_run: str | None = None, limit: int = 5
    ) -> list[StepRun]:
        """Steps of other runs that ended SUCCEEDED or CACHED with content hash ``hash``, the
        newest first: where a step with the same hash may take its results from."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM steps WHERE hash = ? AND status IN ('SUCCEEDED', 'CACHED') "
                "AND run_id IS NOT ? ORDER BY finished_at DESC LIMIT ?",
                (hash, exclude_run, limit),
            ).fetchall()
        return [self._step(r) for r in rows]

    def request_cancel(self, run_id: str) -> Run:
        """Ask a run to stop: RUNNING -> CANCELING (its runner polls ``is_cancel_requested``),
        PENDING -> CANCELED at once. A run already stopping or ended is left as it is."""
        with self._db.write() as conn:
            rid, status = self._run_status(conn, run_id)
            now = time.time()
            if status in ("RUNNING", "PENDING"):
                conn.execute("UPDATE runs SET cancel_requested_at = ? WHERE id = ?", (now, rid))
                new: RunStatus = "CANCELING" if status == "RUNNING" else "CANCELED"
                self._transition_run(conn, rid, status, new, None, now)
            return self._load(conn, rid)

    def is_cancel_requested(self, run_id: str) -> bool:
        with self._db.read() as conn:
            rid = self._resolve(conn, run_id)
            row = conn.execute(
                "SELECT cancel_requested_at, status FROM runs WHERE id = ?", (rid,)
            ).fetchone()
            return row["cancel_requested_at"] is not None or row["status"] == "CANCELING"

    def delete_run(self, run_id: str) -> None:
        """Forget an ended run: its records and its artifacts folder."""
        with self._db.write() as conn:
            rid, status = self._run_status(conn, run_id)
            if status not in TERMINAL_RUN:
                raise TrackingError(f"run {rid} is {status}; cancel it before deleting it")
            conn.execute("DELETE FROM runs WHERE id = ?", (rid,))
        shutil.rmtree(self.runs_dir / rid, ignore_errors=True)

    def recover(self) -> list[str]:
        """End as FAILED the unfinished runs of this host whose runner process is gone.

        Their running steps become FAILED and their pending steps SKIPPED, with the reason;
        metrics, events and finished steps stay. Returns the ids of the runs it ended.
        """
        host = socket.gethostname()
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT id, runner_pid, runner_started_at FROM runs WHERE runner_host = ? AND "
                f"status IN ({', '.join('?' * len(_OPEN))})",
                (host, *_OPEN),
            ).fetchall()
        ended = []
        for row in rows:
            pid = row["runner_pid"]
            if pid is None or is_alive(pid, row["runner_started_at"]):
                continue
            reason = f"the runner process {pid} on {host} ended before the run finished"
            with self._db.write() as conn:
                now_row = conn.execute(
                    "SELECT status, runner_pid FROM runs WHERE id = ?", (row["id"],)
                ).fetchone()
                if (
                    now_row is None
                    or now_row["status"] in TERMINAL_RUN
                    or now_row["runner_pid"] != pid
                ):
                    continue  # finished, deleted or recovered meanwhile
                self._transition_run(
                    conn,
                    row["id"],
                    now_row["status"],
                    "FAILED",
                    reason,
                    time.time(),
                    step_reason=reason,
                )
            ended.append(row["id"])
        return ended

    # -- what runs record ---------------------------------------------------------------------
    def log_metric(
        self,
        run_id: str,
        name: str,
        value: float,
        *,
        step: int | None = None,
        source: str | None = None,
    ) -> None:
        """Record one value of metric ``name`` (a real number; NaN and infinities allowed)."""
        number = metric_value(name, value)
        index = step_index(step)
        with self._db.write() as conn:
            rid = self._resolve(conn, run_id)
            conn.execute(
                "INSERT INTO metrics (run_id, name, value, step, source, timestamp) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (rid, name, number, index, source, time.time()),
            )

    def log_param(self, run_id: str, name: str, value: Any) -> None:
        """Record (or replace) parameter ``name``; stored as JSON (``repr`` as the fallback)."""
        _names([name], "parameter")
        with self._db.write() as conn:
            rid = self._resolve(conn, run_id)
            conn.execute(
                "INSERT INTO params (run_id, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value",
                (rid, name, to_json(value)),
            )

    def metrics(self, run_id: str, name: str | None = None) -> list[Metric]:
        """Every recorded value (of metric ``name``, or of all), oldest first: the curves."""
        with self._db.read() as conn:
            rid = self._resolve(conn, run_id)
            sql = "SELECT * FROM metrics WHERE run_id = ?"
            args: tuple[Any, ...] = (rid,)
            if name is not None:
                sql += " AND name = ?"
                args += (name,)
            rows = conn.execute(sql + " ORDER BY timestamp, id", args).fetchall()
        return [
            Metric(
                r["name"],
                float("nan") if r["value"] is None else r["value"],
                r["step"],
                r["source"],
                r["timestamp"],
            )
            for r in rows
        ]

    def add_artifact(
        self, run_id: str, name: str, path: str | Path, *, step: str | None = None
    ) -> None:
        """Record a file a run produced; the same name (and step) again replaces the entry."""
        _names([name], "artifact")
        where = str(Path(path).expanduser().absolute())
        with self._db.write() as conn:
            rid = self._resolve(conn, run_id)
            conn.execute(
                "DELETE FROM artifacts WHERE run_id = ? AND name = ? AND step IS ?",
                (rid, name, step),
            )
            conn.execute(
                "INSERT INTO artifacts (run_id, name, path, step, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (rid, name, where, step, time.time()),
            )

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """``{"name", "path", "step", "created_at"}`` for each artifact, in the order recorded."""
        with self._db.read() as conn:
            rid = self._resolve(conn, run_id)
            rows = conn.execute(
                "SELECT name, path, step, created_at FROM artifacts WHERE run_id = ? ORDER BY id",
                (rid,),
            ).fetchall()
        return [dict(r) for r in rows]

    def event(self, run_id: str, kind: str, data: Mapping[str, Any]) -> None:
        """Append an event (``kind`` e.g. "retry", "warning") for live UIs and the run log."""
        _names([kind], "event kind")
        with self._db.write() as conn:
            self._event(conn, self._resolve(conn, run_id), kind, data, time.time())

    def events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """The run's events with ``id > after``, oldest first: poll with the last id seen."""
        with self._db.read() as conn:
            rid = self._resolve(conn, run_id)
            rows = conn.execute(
                "SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
                (rid, after, limit if limit else -1),
            ).fetchall()
        return [
            Event(r["id"], r["run_id"], r["time"], r["kind"], from_json(r["data"])) for r in rows
        ]

    def all_events(self, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """Events of every run with ``id > after``, oldest first: what a live view of all runs
        polls with the last id it saw."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit if limit else -1),
            ).fetchall()
        return [
            Event(r["id"], r["run_id"], r["time"], r["kind"], from_json(r["data"])) for r in rows
        ]

    def last_event_id(self) -> int:
        """The id of the newest event (0 when there is none)."""
        with self._db.read() as conn:
            return int(conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    # -- inside a transaction -------------------------------------------------------------------
    def _resolve(self, conn: sqlite3.Connection, run_id: str) -> str:
        if not isinstance(run_id, str) or not run_id.strip():
            raise RunNotFound(str(run_id))
        lo, hi = prefix_range(run_id)
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 11", (lo, hi)
            )
        ]
        if run_id in ids:
            return run_id
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise RunNotFound(run_id)
        raise AmbiguousRunId(run_id, ids[:10], more=len(ids) > 10)

    def _run_status(self, conn: sqlite3.Connection, run_id: str) -> tuple[str, str]:
        rid = self._resolve(conn, run_id)
        return rid, conn.execute("SELECT status FROM runs WHERE id = ?", (rid,)).fetchone()[0]

    def _step_row(self, conn: sqlite3.Connection, rid: str, step: str) -> sqlite3.Row:
        row = conn.execute(
            "SELECT * FROM steps WHERE run_id = ? AND name = ?", (rid, step)
        ).fetchone()
        if row is None:
            known = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM steps WHERE run_id = ? ORDER BY position", (rid,)
                )
            ]
            raise StepNotFound(rid, step, known)
        return row

    def _event(
        self, conn: sqlite3.Connection, rid: str, kind: str, data: Mapping[str, Any], now: float
    ) -> None:
        conn.execute(
            "INSERT INTO events (run_id, time, kind, data) VALUES (?, ?, ?, ?)",
            (rid, now, kind, to_json(dict(data))),
        )

    def _transition_run(
        self,
        conn: sqlite3.Connection,
        rid: str,
        old: str,
        new: str,
        error: str | None,
        now: float,
        *,
        step_reason: str | None = None,
    ) -> None:
        allowed = RUN_TRANSITIONS.get(old, frozenset())
        if new not in allowed:
            reason = (
                f"it already ended ({old})"
                if old in TERMINAL_RUN
                else f"from {old} it may go to {', '.join(sorted(allowed))}"
            )
            raise InvalidTransition(rid, old, new, reason=reason)
        if new in TERMINAL_RUN:
            self._close_steps(conn, rid, new, step_reason, now)
        sets: dict[str, Any] = {"status": new}
        if new == "RUNNING":
            sets["started_at"] = now
        if new in TERMINAL_RUN:
            sets["finished_at"] = now
        if error is not None:
            sets["error"] = error
        conn.execute(
            f"UPDATE runs SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
            (*sets.values(), rid),
        )
        if new == "CANCELING":
            conn.execute(
                "UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, ?) "
                "WHERE id = ?",
                (now, rid),
            )
        self._event(conn, rid, "run", {"status": new, **({"error": error} if error else {})}, now)

    def _close_steps(
        self, conn: sqlite3.Connection, rid: str, run_status: str, reason: str | None, now: float
    ) -> None:
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
            self._write_step(conn, rid, row, new, {"error": {"message": message}}, now)

    def _write_step(
        self,
        conn: sqlite3.Connection,
        rid: str,
        row: sqlite3.Row,
        status: str,
        fields: Mapping[str, Any],
        now: float,
    ) -> None:
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
        self._event(conn, rid, "step", {**data, **({"error": error} if error else {})}, now)

    # -- reading ----------------------------------------------------------------------------------
    def _load(self, conn: sqlite3.Connection, rid: str) -> Run:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (rid,)).fetchone()
        if row is None:
            raise RunNotFound(rid)
        return self._load_rows(conn, [row])[0]

    def _load_rows(self, conn: sqlite3.Connection, rows: Sequence[sqlite3.Row]) -> list[Run]:
        ids = [r["id"] for r in rows]
        steps: dict[str, list[StepRun]] = {i: [] for i in ids}
        params: dict[str, dict[str, Any]] = {i: {} for i in ids}
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        for r in _by_run(
            conn, "SELECT * FROM steps WHERE run_id IN ({}) ORDER BY run_id, position", ids
        ):
            steps[r["run_id"]].append(self._step(r))
        for r in _by_run(
            conn, "SELECT run_id, name, value FROM params WHERE run_id IN ({}) ORDER BY rowid", ids
        ):
            params[r["run_id"]][r["name"]] = from_json(r["value"])
        # the latest value per name: SQLite takes the bare columns from the row with max(id)
        for r in _by_run(
            conn,
            "SELECT run_id, name, value, max(id) FROM metrics "
            "WHERE run_id IN ({}) GROUP BY run_id, name",
            ids,
        ):
            value = r["value"]
            metrics[r["run_id"]][r["name"]] = float("nan") if value is None else value
        return [
            Run(
                id=r["id"],
                kind=r["kind"],
                name=r["name"],
                status=r["status"],
                backend=r["backend"],
                notebook=r["notebook"],
                notebook_hash=r["notebook_hash"],
                params=params[r["id"]],
                created_at=r["created_at"],
                started_at=r["started_at"],
                finished_at=r["finished_at"],
                error=r["error"],
                parent_id=r["parent_id"],
                runner_pid=r["runner_pid"],
                runner_host=r["runner_host"],
                artifacts_dir=str(self.runs_dir / r["id"]),
                steps=steps[r["id"]],
                metrics=metrics[r["id"]],
                remote=None if r["remote"] is None else from_json(r["remote"]),
                spec=None if r["spec"] is None else from_json(r["spec"]),
            )
            for r in rows
        ]

    @staticmethod
    def _step(r: sqlite3.Row) -> StepRun:
        return StepRun(
            run_id=r["run_id"],
            name=r["name"],
            status=r["status"],
            attempt=r["attempt"],
            started_at=r["started_at"],
            finished_at=r["finished_at"],
            output_notebook=r["output_notebook"],
            log=r["log"],
            error=from_json(r["error"]),
            gpus=from_json(r["gpus"]) or [],
            hash=r["hash"],
            cached_from=r["cached_from"],
        )


def _by_run(conn: sqlite3.Connection, sql: str, ids: Sequence[str]) -> Iterator[sqlite3.Row]:
    """Rows of ``sql`` (with ``{}`` where the id list goes) for ``ids``, in chunks."""
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        yield from conn.execute(sql.format(", ".join("?" * len(chunk))), chunk)
