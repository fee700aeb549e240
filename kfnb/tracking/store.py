"""The run store: every run kfnb starts, seen alike by the CLI, notebook kernels and the server.

A store is a folder (``KFNB_HOME``, else ``~/.kfnb``) holding ``kfnb.db`` (SQLite, see
``kfnb.tracking.db`` for how concurrent writers share it) and ``runs/<run_id>/``, the run's
artifacts folder. Each ``Store`` method is one short transaction, so a ``Store`` may be used from
any thread, and any number of processes may open the same folder.

``Store`` is a facade over one repository per noun, which hold the logic:

- ``runs``: creating runs (kinds and the run tree validated), status transitions, lists,
  ``children`` and ``tree``;
- ``steps``: step transitions, steps added later, the step cache's lookup;
- ``records``: metrics, parameters, artifacts and events;
- ``recovery`` (with ``liveness``): ending runs whose runner died.

Every method that takes a run id also takes a unique prefix of one (``RunNotFound`` when none
matches, ``AmbiguousRunId`` when several do). Status changes follow the state machine in
``kfnb.tracking.models`` (``InvalidTransition`` otherwise) and each appends an event, which
live UIs poll with ``events(run_id, after=last_id)``. When a run ends, steps it left open are
closed, so a finished run never shows a step still running.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .db import HOME_ENV, Database
from .errors import StoreError
from .models import Event, Metric, Run, RunStatus, RunTree, StepRun, StepStatus
from .records import Records
from .recovery import recover
from .runs import RunFilter, Runs
from .steps import Steps

__all__ = ["HOME_ENV", "Store", "default_home"]


def _make_home(home: Path) -> Path:
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(
            f"cannot create the run store folder: {err}",
            fix=f"set {HOME_ENV} to a writable folder",
            where=str(home),
        ) from err
    return home


def default_home() -> Path:
    """``$KFNB_HOME`` if set, else ``~/.kfnb``; created if missing."""
    raw = os.environ.get(HOME_ENV, "").strip()
    return _make_home(Path(raw or "~/.kfnb").expanduser().resolve())


_DOOMED = "temp.kfnb_doomed_runs"  # delete_runs: the ids it deletes, in its transaction


class Store:
    """The run store in the folder ``home`` (default: ``default_home()``)."""

    def __init__(self, home: str | Path | None = None) -> None:
        if home is None:
            self.home = default_home()
        else:
            self.home = _make_home(Path(home).expanduser().resolve())
        self.db_path = self.home / "kfnb.db"
        self.runs_dir = self.home / "runs"
        self._db = Database(self.db_path)
        self._runs = Runs(self._db, self.runs_dir)
        self._steps = Steps(self._db)
        self._records = Records(self._db)

    def __repr__(self) -> str:
        return f"Store({str(self.home)!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: another process opens its own
        return (Store, (self.home,))

    def close(self) -> None:
        """Close the calling thread's connection (the store reopens it when used again)."""
        self._db.close()

    @property
    def read_only(self) -> StoreError | None:
        """Why this process can read the store but not write it (a full disk, a read-only
        mount, another user's files), or None. Each write tries again, and raises this."""
        return self._db.read_only

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

        ``kind`` is one of ``RUN_KINDS`` (``UnknownRunKind`` otherwise); ``parent_id`` (an id or
        prefix) a run whose kind may have ``kind`` children (``CHILD_KINDS``; ``InvalidParent``
        otherwise). ``spec`` is what the run runs (``kfnb.spec``: for a pipeline its IR with
        edges), kept with the run so it is drawn as it ran whatever happens to the notebook later.

        ``runner_pid`` is the process that will drive the run (default: this one), which
        ``recover()`` checks on later. A ``remote`` run (one a cluster drives, e.g. on KFP) has
        no runner here: ``recover()`` leaves it alone, its backend reads its status from there.
        """
        return self._runs.create(
            kind=kind,
            name=name,
            backend=backend,
            notebook=notebook,
            notebook_hash=notebook_hash,
            params=params,
            steps=steps,
            parent_id=parent_id,
            runner_pid=runner_pid,
            remote=remote,
            spec=spec,
        )

    def set_remote(self, run_id: str, **fields: Any) -> Run:
        """Add ``fields`` to a remote run's ``remote`` record (its id there, once known...)."""
        return self._runs.set_remote(run_id, fields)

    def set_runner(self, run_id: str, pid: int) -> Run:
        """Hand a run to another runner process (``pid`` on this host): a job's supervisor
        takes it over from the kernel that submitted it, so ``recover()`` follows the process
        that really drives it."""
        return self._runs.set_runner(run_id, pid)

    def set_spec(self, run_id: str, spec: Mapping[str, Any]) -> Run:
        """Replace a run's spec (a study's trial budget grew...); appends a ``spec`` event."""
        return self._runs.set_spec(run_id, spec)

    def resume_run(self, run_id: str, pid: int | None = None) -> Run:
        """Take a stopped (CANCELED) or failed study or sweep (``RESUMABLE_KINDS``), or a
        finished study that got more trials, up again:
        RUNNING under runner ``pid`` (default: this process), error and end cleared, its
        children as they are. ``InvalidTransition`` for any other run."""
        return self._runs.resume(run_id, os.getpid() if pid is None else pid)

    def get_run(self, run_id: str) -> Run:
        return self._runs.get(run_id)

    def resolve_id(self, run_id: str) -> str:
        """The full id of the run that ``run_id`` (an id or a unique prefix) names."""
        return self._runs.resolve_id(run_id)

    def list_runs(
        self,
        *,
        limit: int | None = 20,
        kind: str | None = None,
        parent_id: str | None = None,
        roots_only: bool = False,
        notebook: str | Path | None = None,
        status: str | Iterable[str] | None = None,
        remote: bool | None = None,
        offset: int = 0,
    ) -> list[Run]:
        """Runs, newest first; ``limit`` ``None`` (or 0) for all of them, after skipping
        ``offset``. ``kind`` (one of ``RUN_KINDS``), ``parent_id`` (the children of that run),
        ``roots_only`` (runs without a parent: what a run list shows at its top level),
        ``notebook`` (the path as recorded: absolute), ``status`` (one or several) and ``remote``
        (only runs a cluster drives, or only the others) filter."""
        selected = RunFilter(
            kind=kind,
            parent_id=parent_id,
            roots_only=roots_only,
            notebook=notebook,
            status=status,
            remote=remote,
        )
        return self._runs.find(selected, limit=limit, offset=offset)

    def count_runs(
        self,
        *,
        kind: str | None = None,
        parent_id: str | None = None,
        roots_only: bool = False,
        notebook: str | Path | None = None,
        status: str | Iterable[str] | None = None,
        remote: bool | None = None,
    ) -> int:
        """How many runs ``list_runs`` with the same filters and no limit returns."""
        selected = RunFilter(
            kind=kind,
            parent_id=parent_id,
            roots_only=roots_only,
            notebook=notebook,
            status=status,
            remote=remote,
        )
        return self._runs.count(selected)

    def children(self, run_id: str) -> list[Run]:
        """The runs whose parent is ``run_id``, oldest first (a tune run's trials...)."""
        return self._runs.children(run_id)

    def tree(self, run_id: str) -> RunTree:
        """``run_id`` with its children, theirs and so on: one snapshot, children oldest first."""
        return self._runs.tree(run_id)

    def set_run_status(self, run_id: str, status: RunStatus, *, error: str | None = None) -> Run:
        """Move a run to ``status`` (``started_at`` on RUNNING, ``finished_at`` when it ends)."""
        return self._runs.set_status(run_id, status, error)

    def request_cancel(self, run_id: str) -> Run:
        """Ask a run to stop: RUNNING -> CANCELING (its runner polls ``is_cancel_requested``),
        PENDING -> CANCELED at once. A run already stopping or ended is left as it is."""
        return self._runs.request_cancel(run_id)

    def is_cancel_requested(self, run_id: str) -> bool:
        return self._runs.is_cancel_requested(run_id)

    def delete_run(self, run_id: str) -> None:
        """Forget an ended run: its records and its artifacts folder."""
        self._runs.delete(run_id)

    def recover(self) -> list[str]:
        """End as FAILED the unfinished runs whose runner process is gone, as far as this process
        can tell (``kfnb.tracking.liveness``: never a runner in another PID namespace).

        Their running steps become FAILED and their pending steps SKIPPED, with the reason;
        metrics, events and finished steps stay. Returns the ids of the runs it ended.
        A store this process cannot write is left as it is (what only reads it still works).
        """
        if self._db.read_only is not None:
            return []
        return recover(self._db)

    # -- steps --------------------------------------------------------------------------------
    def add_step(self, run_id: str, step: str) -> None:
        """Add a ``PENDING`` step to a run that has not ended (steps that appear later: trials)."""
        self._steps.add(run_id, step)

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
        fields = {
            "error": error,
            "output_notebook": output_notebook,
            "log": log,
            "gpus": gpus,
            "hash": hash,
            "cached_from": cached_from,
        }
        return self._steps.set_status(run_id, step, status, fields)

    def cache_candidates(
        self, hash: str, *, exclude_run: str | None = None, limit: int = 5
    ) -> list[StepRun]:
        """Steps of other runs that ended SUCCEEDED or CACHED with content hash ``hash``, the
        newest first: where a step with the same hash may take its results from."""
        return self._steps.cache_candidates(hash, exclude_run=exclude_run, limit=limit)

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
        self._records.log_metric(run_id, name, value, step=step, source=source)

    def log_param(self, run_id: str, name: str, value: Any) -> None:
        """Record (or replace) parameter ``name``; stored as JSON (``repr`` as the fallback)."""
        self._records.log_param(run_id, name, value)

    def metrics(self, run_id: str, name: str | None = None) -> list[Metric]:
        """Every recorded value (of metric ``name``, or of all), oldest first: the curves."""
        return self._records.metrics(run_id, name)

    def add_artifact(
        self, run_id: str, name: str, path: str | Path, *, step: str | None = None
    ) -> None:
        """Record a file a run produced; the same name (and step) again replaces the entry."""
        self._records.add_artifact(run_id, name, path, step=step)

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """``{"name", "path", "step", "created_at"}`` for each artifact, in the order recorded."""
        return self._records.artifacts(run_id)

    def event(self, run_id: str, kind: str, data: Mapping[str, Any]) -> None:
        """Append an event (``kind`` e.g. "retry", "warning") for live UIs and the run log."""
        self._records.event(run_id, kind, data)

    def events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """The run's events with ``id > after``, oldest first: poll with the last id seen."""
        return self._records.events(run_id, after=after, limit=limit)

    def all_events(self, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """Events of every run with ``id > after``, oldest first: what a live view of all runs
        polls with the last id it saw."""
        return self._records.all_events(after=after, limit=limit)

    def last_event_id(self) -> int:
        """The id of the newest event (0 when there is none)."""
        return self._records.last_event_id()

    # -- retention (kfnb.retention) -------------------------------------------------------------
    def delete_runs(self, run_ids: Iterable[str]) -> list[str]:
        """Forget several ended runs at once (a run and the runs under it), all or none: their
        records (steps, params, metrics, artifacts, events: ``ON DELETE CASCADE``) in one
        transaction, then their artifacts folders. Returns their full ids.

        ``TrackingError`` (nothing deleted) if one of them has not ended, if a run left out
        has one of them as its parent, or if a step of a run left out reused the results of
        one of them (``cached_from``): the checks hold at the moment of the deletion."""
        import shutil

        from .errors import TrackingError
        from .ids import resolve
        from .models import TERMINAL_RUN

        with self._db.write() as conn:
            ids = list(dict.fromkeys(resolve(conn, r) for r in run_ids))
            if not ids:
                return []
            # the ids in a table of this transaction's, not as query variables: a tree may hold
            # more runs (a sweep's, a study's) than SQLite allows variables in one query
            conn.execute(f"CREATE TEMP TABLE {_DOOMED} (id TEXT PRIMARY KEY)")
            conn.executemany(f"INSERT INTO {_DOOMED} VALUES (?)", [(i,) for i in ids])
            doomed = f"(SELECT id FROM {_DOOMED})"
            for row in conn.execute(f"SELECT id, status FROM runs WHERE id IN {doomed}"):
                if row["status"] not in TERMINAL_RUN:
                    raise TrackingError(
                        f"run {row['id']} is {row['status']}",
                        fix=f"cancel it before deleting it: kfnb cancel {row['id']}",
                    )
            child = conn.execute(
                f"SELECT id, parent_id FROM runs WHERE parent_id IN {doomed} "
                f"AND id NOT IN {doomed} LIMIT 1"
            ).fetchone()
            if child is not None:
                raise TrackingError(
                    f"run {child['parent_id']} holds run {child['id']}, which is not deleted "
                    "with it",
                    fix="delete a run together with the runs under it",
                )
            # a step's cached_from is "<run id>/<step>" (run ids hold no "/")
            user = conn.execute(
                "SELECT run_id, name, substr(cached_from, 1, instr(cached_from, '/') - 1) "
                "AS source FROM steps WHERE instr(cached_from, '/') > 0 "
                f"AND substr(cached_from, 1, instr(cached_from, '/') - 1) IN {doomed} "
                f"AND run_id NOT IN {doomed} LIMIT 1"
            ).fetchone()
            if user is not None:
                raise TrackingError(
                    f"step {user['name']!r} of run {user['run_id']} reused the results "
                    f"of run {user['source']}",
                    fix=f"delete run {user['run_id']} first, or keep run {user['source']}",
                )
            conn.execute(f"DELETE FROM runs WHERE id IN {doomed}")
            conn.execute(f"DROP TABLE {_DOOMED}")  # (a refusal rolls its creation back)
        for rid in ids:
            shutil.rmtree(self.runs_dir / rid, ignore_errors=True)
        return ids
