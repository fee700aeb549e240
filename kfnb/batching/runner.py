"""``BatchRunner``: one thread of the process that started (or resumed) a sweep drives its
sets to their end, like a study's runner.

Each set is a pipeline run under the ``batch`` run, submitted through ONE local backend object,
so the sets share its pool of slots (and this process's warm kernels). Sets run
``max_parallel`` at a time. Steps that read no swept parameter have the same content hash in
every set, so the step cache serves them; to have them computed once, not by each of the first
sets at the same moment, the first set runs alone until those steps ended (the gate).

A set whose run failed for an infrastructure fault (a dead kernel, a step timeout) is run
again, up to ``retries`` times; any failure is, with ``retry_failed``. The runs of each set are
kept in the batch's spec (``batch.runs``: set index -> run ids, the last one counts), so a
resume runs only the sets whose last run did not succeed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import KfnbError
from ..hashing import independent_steps
from ..parents import ParentRunner
from ..tracking import TERMINAL_RUN, Run, Store

if TYPE_CHECKING:
    from ..backends import RunHandle
    from ..dag import Pipeline

log = logging.getLogger(__name__)

POLL_S = 0.05
INFRA = ("DeadKernelError", "timed out after", "kernel died", "dead kernel")


def infrastructure_fault(run: Run) -> bool:
    """Whether ``run`` failed because of what ran it (a kernel that died, a step timeout), not
    because of the notebook's code."""
    for step in run.steps:
        if step.status == "FAILED" and step.error:
            text = f"{step.error.get('ename', '')} {step.error.get('message', '')}"
            if any(mark.lower() in text.lower() for mark in INFRA):
                return True
    return False


@dataclass
class _Active:
    index: int
    handle: RunHandle


class BatchRunner(ParentRunner):
    """Drives the batch ``batch_id`` to its end; ``start()`` runs it in a thread."""

    what = "batch"

    def __init__(
        self, store: Store, batch_id: str, pipeline: Pipeline, backend: Any, todo: list[int]
    ) -> None:
        super().__init__(store, batch_id)
        self.batch_id = batch_id
        self.pipeline = pipeline
        self.backend = backend
        spec = dict((store.get_run(batch_id).spec or {}).get("batch") or {})
        self.sets: list[dict[str, Any]] = [dict(s) for s in spec.get("sets") or []]
        self.fixed: dict[str, Any] = dict(spec.get("fixed") or {})
        self.max_parallel = int(spec.get("max_parallel") or 1)
        self.retries = int(spec.get("retries") or 0)
        self.retry_failed = bool(spec.get("retry_failed"))
        self.queue: deque[int] = deque(todo)
        self.tries: dict[int, int] = {}
        self.active: dict[int, _Active] = {}
        names: set[str] = set()
        for s in self.sets:
            names |= set(s)
        self.shared = independent_steps(pipeline, names)
        self._gate: _Active | None = None
        self._gate_open = not self.shared

    def _run(self) -> None:
        if self.store.get_run(self.batch_id).status == "PENDING":
            self.store.set_run_status(self.batch_id, "RUNNING")
        while True:
            if self.cancel_event.is_set() or self.store.is_cancel_requested(self.batch_id):
                self._stop_children()
                self._end("CANCELED", None)
                return
            self._reap()
            while (
                self.queue
                and len(self.active) < self.max_parallel
                and (self._gate_open or self._gate is None)
            ):
                self._launch(self.queue.popleft())
            if not self.active and not self.queue:
                break
            self._check_gate()
            self.cancel_event.wait(POLL_S)
        last = self._last_runs()
        failed = [i for i in range(len(self.sets)) if (last.get(i) or _NONE).status != "SUCCEEDED"]
        if not failed:
            self._end("SUCCEEDED", None)
            return
        first = last.get(failed[0])
        why = set_error(first) if first is not None else "it did not run"
        self._end(
            "FAILED",
            f"{len(failed)} of {len(self.sets)} sets failed (set {failed[0]}: {why})",
        )

    def _last_runs(self) -> dict[int, Run]:
        runs = runs_of(self.store.get_run(self.batch_id))
        return {i: self.store.get_run(ids[-1]) for i, ids in runs.items() if ids}

    def _launch(self, index: int) -> None:
        from ..params import resolve_params

        self.tries[index] = self.tries.get(index, 0) + 1
        try:
            values = resolve_params(self.pipeline, {**self.fixed, **self.sets[index]})
            handle: RunHandle = self.backend.submit(
                self.pipeline, values, self.store, parent_id=self.batch_id
            )
        except KfnbError as err:
            self.store.event(
                self.batch_id, "set", {"set": index, "status": "FAILED", "error": err.render()}
            )
            if self._gate is None and self.shared:
                self._gate_open = True  # nothing to wait for
            return
        record = self.store.get_run(self.batch_id)
        spec = dict(record.spec or {})
        batch = dict(spec.get("batch") or {})
        runs = {str(k): list(v) for k, v in (batch.get("runs") or {}).items()}
        runs.setdefault(str(index), []).append(handle.id)
        batch["runs"] = runs
        self.store.set_spec(self.batch_id, {**spec, "batch": batch})
        active = _Active(index, handle)
        self.active[index] = active
        if self._gate is None and not self._gate_open:
            self._gate = active
        self.store.event(
            self.batch_id, "set", {"set": index, "run": handle.id, "status": "RUNNING"}
        )

    def _check_gate(self) -> None:
        """Open the gate once the first set's shared steps ended (succeeded: every later set
        takes them from the cache; else the sets run anyway, each to its own outcome)."""
        if self._gate_open or self._gate is None:
            return
        child = self.store.get_run(self._gate.handle.id)
        states = {s.name: s.status for s in child.steps}
        ended = ("SUCCEEDED", "CACHED", "FAILED", "SKIPPED", "CANCELED")
        if all(states.get(s) in ended for s in self.shared) or child.status in TERMINAL_RUN:
            self._gate_open = True

    def _reap(self) -> None:
        for index, active in list(self.active.items()):
            child = self.store.get_run(active.handle.id)
            if child.status not in TERMINAL_RUN:
                continue
            del self.active[index]
            again = child.status == "FAILED" and self.tries[index] <= self.retries
            if again and (self.retry_failed or infrastructure_fault(child)):
                self.queue.appendleft(index)
                self.store.event(
                    self.batch_id,
                    "retry",
                    {"set": index, "run": child.id, "error": set_error(child)},
                )
                continue
            self.store.event(
                self.batch_id, "set", {"set": index, "run": child.id, "status": child.status}
            )

    def _stop_children(self) -> None:
        for active in self.active.values():
            try:
                active.handle.cancel()
            except Exception as err:
                log.warning("batch %s: cancelling %s: %s", self.batch_id, active.handle.id, err)
        for active in self.active.values():
            try:
                active.handle.wait(timeout=60)
            except Exception as err:
                log.warning("batch %s: stopping %s: %s", self.batch_id, active.handle.id, err)
        self.active.clear()


class _Never:
    status = "PENDING"


_NONE: Any = _Never()


def runs_of(record: Run) -> dict[int, list[str]]:
    """Set index -> the ids of its runs (the last one counts), from the batch's spec."""
    raw: Mapping[str, Any] = ((record.spec or {}).get("batch") or {}).get("runs") or {}
    return {int(k): list(v) for k, v in raw.items()}


def set_error(child: Run) -> str:
    """Why a set's run failed: its failing step's error, else the run's."""
    for step in child.steps:
        if step.status == "FAILED" and step.error:
            message = step.error.get("message") or step.error.get("ename") or str(step.error)
            return f"step {step.name!r} failed: {message}"
    return child.error or f"run {child.id} ended {child.status}"
