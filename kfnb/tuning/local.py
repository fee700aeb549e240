"""The local tuning backend: Optuna asks, kfnb runs each trial on this machine.

A ``StudyRunner`` is one thread of the process that started (or resumed) the study, like a
local pipeline run's scheduler. It keeps the Optuna study in a journal file in the study's
folder (``optuna.journal``: safe across processes, unlike a shared SQLite file) and loops:

- **launch** up to ``parallel`` trials at once while the budget lasts: ``ask()``, record a
  ``trial`` run under the study, start what the trial runs (``TrialTarget.start``: a pipeline
  run on the local backend, or a training job) as the trial's child;
- **report** each running trial's new intermediate values of the objective (what the trial
  logs with ``kfnb.log_metric(objective, value, step=i)``) to Optuna; when the pruner says so,
  the trial's run is cancelled at once (its kernels killed) and the trial ends ``PRUNED``;
- **reap** ended trials: the objective's last value is ``tell``-ed; a trial whose run failed,
  or recorded no objective, is FAILED with the reason.

Steps that read no tuned parameter have the same content hash in every trial, so the step
cache serves them; to have them computed once, not by each of the first ``parallel`` trials at
the same moment, the first trial runs alone until those steps are done (``shared_steps``).

Stop (``Store.request_cancel`` on the study) cancels the running trials and ends the study
CANCELED; ``resume`` (or a runner that was killed) picks it up again: trials Optuna still holds
as running are failed there, their parameters queued again, and the study goes on until its
budget of finished trials (succeeded, pruned or failed) is reached. Finished trials are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import KfnbError
from ..parents import ParentRunner
from ..tracking import TERMINAL_RUN, TERMINAL_STEP, Run, Store
from .algorithms import grid_points, optuna_module, pruner, sampler
from .space import grid_size
from .spec import StudySpec

if TYPE_CHECKING:
    from ..backends import RunHandle
    from ..dag import Pipeline

log = logging.getLogger(__name__)

JOURNAL = "optuna.journal"
POLL_S = 0.05  # how soon an ended trial is told and the next one started


class TrialTarget(Protocol):
    """What each trial runs: ``start`` returns the handle of the trial's child run."""

    backend: str

    def start(self, store: Store, trial_id: str, params: Mapping[str, Any]) -> RunHandle: ...

    def shared_steps(self, space: Mapping[str, Any]) -> set[str]: ...


class NotebookTarget:
    """Each trial is a pipeline run of ``pipeline`` on ``backend`` (one backend object for the
    whole study, so trials share its pool of slots, CPUs and GPUs)."""

    def __init__(self, pipeline: Pipeline, backend: Any, fixed: Mapping[str, Any]) -> None:
        self.pipeline = pipeline
        self.impl = backend
        self.backend = backend.name
        self.fixed = dict(fixed)

    def start(self, store: Store, trial_id: str, params: Mapping[str, Any]) -> RunHandle:
        from ..params import resolve_params

        values = resolve_params(self.pipeline, {**self.fixed, **params})
        handle: RunHandle = self.impl.submit(self.pipeline, values, store, parent_id=trial_id)
        return handle

    def shared_steps(self, space: Mapping[str, Any]) -> set[str]:
        """Steps whose content hash no tuned parameter enters: the same in every trial."""
        from ..hashing import independent_steps

        return independent_steps(self.pipeline, set(space))


class FunctionTarget:
    """Each trial is a training job of ``program`` with the trial's arguments."""

    backend = "local"

    def __init__(self, program: Any, fixed: Mapping[str, Any], how: Mapping[str, Any]) -> None:
        self.program = program
        self.fixed = dict(fixed)
        self.how = dict(how)

    def start(self, store: Store, trial_id: str, params: Mapping[str, Any]) -> RunHandle:
        from ..training import submit

        args = self.program.check_args({**self.fixed, **params})
        job: RunHandle = submit(replace(self.program, args=args), parent_id=trial_id, **self.how)
        return job

    def shared_steps(self, space: Mapping[str, Any]) -> set[str]:
        return set()


@dataclass
class _Active:
    trial: Any  # optuna.Trial
    run_id: str  # the trial run
    handle: RunHandle  # its child: the pipeline run or training job
    last_step: int | None = None
    pruned: bool = False
    stopped: bool = False  # the study was stopped: Optuna keeps it running, a resume redoes it
    canceled: bool = False  # this trial was cancelled by itself: failed in Optuna


def open_optuna(folder: Path, study_id: str, spec: StudySpec) -> Any:
    """The Optuna study of ``study_id`` in its journal file (created, or loaded to resume)."""
    optuna = optuna_module()

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # trials show in kfnb's views
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
    return optuna.create_study(
        storage=storage,
        study_name=study_id,
        direction="maximize" if spec.direction == "maximize" else "minimize",
        sampler=sampler(spec.algorithm, spec.space, spec.seed),
        pruner=pruner(spec.prune),
        load_if_exists=True,
    )


class StudyRunner(ParentRunner):
    """Drives one study to its end; ``start()`` runs it in a thread of this process."""

    what = "study"

    def __init__(self, store: Store, study_id: str, spec: StudySpec, target: TrialTarget) -> None:
        super().__init__(store, study_id)
        self.study_id = study_id
        self.spec = spec
        self.target = target
        self.active: dict[int, _Active] = {}
        self._gate: _Active | None = None
        self._gate_open = False
        self._shared: set[str] = set()
        self._fatal: str | None = None

    # -- the loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        record = self.store.get_run(self.study_id)
        folder = Path(record.artifacts_dir)
        ostudy = open_optuna(folder, self.study_id, self.spec)
        if record.status == "PENDING":  # a new study (a resumed one is RUNNING already)
            queued = [dict(p) for p in self.spec.initial]
            if self.spec.algorithm == "grid":
                queued += [
                    p for p in grid_points(self.spec.space, self.spec.seed) if p not in queued
                ]
            for params in queued:
                ostudy.enqueue_trial(params, skip_if_exists=False)
            self.store.set_run_status(self.study_id, "RUNNING")
        self._requeue_orphans(ostudy)
        self._shared = self.target.shared_steps(self.spec.space)
        self._gate_open = not self._shared
        while True:
            if self._cancel_requested():
                self._stop_children()
                self._end("CANCELED", None)
                return
            self._reap(ostudy)
            self._report()
            if self._fatal is not None:
                self._stop_children()
                self._end("FAILED", self._fatal)
                return
            done, failed = self._finished()
            budget = self._budget()
            if self.spec.max_failed is not None and failed >= self.spec.max_failed:
                self._stop_children()
                self._end("FAILED", f"{failed} trials failed (max_failed={self.spec.max_failed})")
                return
            while (
                len(self.active) < self.spec.parallel
                and done + len(self.active) < budget
                and (self._gate_open or self._gate is None)
            ):
                self._launch(ostudy)
            if not self.active and done >= budget:
                break
            self._check_gate()
            self.cancel_event.wait(POLL_S)
        rows = self.store.children(self.study_id)
        if any(r.status == "SUCCEEDED" for r in rows):
            self._end("SUCCEEDED", None)
        else:
            errors = [f"{r.name}: {r.error}" for r in rows if r.error]
            self._end("FAILED", "no trial succeeded" + (f"; {errors[0]}" if errors else ""))

    def _budget(self) -> int:
        """The trials the study should finish: its spec's (``add_trials`` raises it), at most
        the grid's size for a grid search."""
        stored = (self.store.get_run(self.study_id).spec or {}).get("study") or {}
        budget = int(stored.get("trials", self.spec.trials))
        if self.spec.algorithm == "grid":
            budget = min(budget, grid_size(self.spec.space))
        return budget

    def _finished(self) -> tuple[int, int]:
        """(trials that count as finished, of them failed): succeeded, pruned and failed ones;
        a trial redone after a stop or a lost runner (``retried``) and a cancelled one do not."""
        done = failed = 0
        for row in self.store.children(self.study_id):
            if ((row.spec or {}).get("trial") or {}).get("retried"):
                continue
            if row.status in ("SUCCEEDED", "PRUNED", "FAILED"):
                done += 1
                failed += row.status == "FAILED"
        return done, failed

    def _cancel_requested(self) -> bool:
        if self.cancel_event.is_set():
            return True
        if self.store.is_cancel_requested(self.study_id):
            self.cancel_event.set()
            return True
        return False

    # -- trials -----------------------------------------------------------------------------
    def _launch(self, ostudy: Any) -> None:
        trial = ostudy.ask()
        params = {name: dist.suggest(trial, name) for name, dist in self.spec.space.items()}
        record = self.store.create_run(
            kind="trial",
            name=f"trial-{trial.number}",
            backend=self.target.backend,
            notebook=self.store.get_run(self.study_id).notebook,
            notebook_hash=None,
            params=params,
            parent_id=self.study_id,
            spec={"trial": {"number": trial.number}},
        )
        trial.set_user_attr("kfnb_run", record.id)
        self.store.set_run_status(record.id, "RUNNING")
        try:
            handle = self.target.start(self.store, record.id, params)
        except KfnbError as err:
            ostudy.tell(trial, state=_state("FAIL"))
            self.store.set_run_status(record.id, "FAILED", error=err.render())
            self._trial_event(trial.number, record.id, "FAILED")
            if self._gate is None and self._shared:
                self._fatal = f"trial {trial.number} could not start: {err.render()}"
            return
        active = _Active(trial, record.id, handle)
        self.active[trial.number] = active
        if self._gate is None:
            self._gate = active
        self._trial_event(trial.number, record.id, "RUNNING")

    def _check_gate(self) -> None:
        """Open the gate once the first trial's shared steps are done (then every later trial
        takes them from the cache); a shared step that failed fails the study."""
        if self._gate_open or self._gate is None:
            return
        child = self.store.get_run(self._gate.handle.id)
        states = {s.name: s.status for s in child.steps}
        if all(states.get(s) in ("SUCCEEDED", "CACHED") for s in self._shared):
            self._gate_open = True
            return
        broken = [
            s
            for s in self._shared
            if states.get(s) in TERMINAL_STEP and states.get(s) not in ("SUCCEEDED", "CACHED")
        ]
        if broken or child.status in TERMINAL_RUN:
            if self._gate.pruned or self._gate.stopped:
                self._gate = None  # another trial warms the cache
                return
            names = ", ".join(sorted(broken)) or "its first steps"
            self._fatal = (
                f"step {names} of trial {self._gate.trial.number} did not succeed "
                f"(run {child.id}: {child.error or child.status}); it reads no tuned parameter, "
                "so every trial would fail the same way"
            )

    def _report(self) -> None:
        objective = self.spec.objective
        for active in list(self.active.values()):
            if active.pruned or active.stopped or active.canceled:
                continue
            if self.store.is_cancel_requested(active.run_id):
                active.canceled = True
                active.handle.cancel()
                continue
            fresh = [
                m
                for m in self.store.metrics(active.handle.id, objective)
                if m.step is not None and (active.last_step is None or m.step > active.last_step)
            ]
            for metric in fresh:
                step = int(metric.step or 0)
                active.trial.report(metric.value, step)
                active.last_step = step
                self.store.log_metric(active.run_id, objective, metric.value, step=step)
            if fresh and self.spec.prune is not None and active.trial.should_prune():
                active.pruned = True
                active.handle.cancel()
                self.store.event(
                    self.study_id,
                    "pruned",
                    {"trial": active.trial.number, "run": active.run_id, "step": active.last_step},
                )

    def _reap(self, ostudy: Any) -> None:
        for number, active in list(self.active.items()):
            child = self.store.get_run(active.handle.id)
            if child.status not in TERMINAL_RUN:
                continue
            del self.active[number]
            status, error, value = self._outcome(active, child)
            # the store first: a runner killed between the two leaves Optuna's trial running,
            # and a resume then takes the stored outcome (``_requeue_orphans``)
            if status == "SUCCEEDED":
                self.store.log_metric(active.run_id, self.spec.objective, value)
            self._set_trial(active.run_id, status, error)
            if status == "SUCCEEDED":
                ostudy.tell(active.trial, value)
            elif status == "PRUNED":
                ostudy.tell(active.trial, state=_state("PRUNED"))
            elif status == "FAILED" or active.canceled:
                ostudy.tell(active.trial, state=_state("FAIL"))
            self._trial_event(number, active.run_id, status)

    def _outcome(self, active: _Active, child: Run) -> tuple[str, str | None, float]:
        if active.pruned:
            return "PRUNED", None, 0.0
        if active.stopped or active.canceled:
            return "CANCELED", None, 0.0
        if child.status != "SUCCEEDED":
            return "FAILED", _child_error(child), 0.0
        value = child.metrics.get(self.spec.objective)
        if value is None:
            recorded = ", ".join(sorted(child.metrics)) or "none"
            return (
                "FAILED",
                f"run {child.id} recorded no metric {self.spec.objective!r} (it recorded: "
                f"{recorded}); log it with kfnb.log_metric({self.spec.objective!r}, value) "
                "or list it in the pipeline-metrics cell",
                0.0,
            )
        return "SUCCEEDED", None, value

    def _set_trial(self, run_id: str, status: str, error: str | None) -> None:
        self.store.set_run_status(run_id, status, error=error)  # type: ignore[arg-type]

    def _stop_children(self) -> None:
        """Cancel every running trial and wait for their runs to end (trials stay running in
        Optuna, so a resume runs their parameters again)."""
        for active in self.active.values():
            active.stopped = True
            try:
                active.handle.cancel()
            except Exception as err:
                log.warning("study %s: cancelling %s: %s", self.study_id, active.run_id, err)
        for active in list(self.active.values()):
            try:
                active.handle.wait(timeout=60)
                self._set_trial(active.run_id, "CANCELED", None)
            except Exception as err:
                log.warning("study %s: stopping %s: %s", self.study_id, active.run_id, err)
        self.active.clear()

    def _requeue_orphans(self, ostudy: Any) -> None:
        """Trials a stopped or lost runner left running in Optuna: a trial whose outcome the
        store holds is told it; the others are failed there and their parameters run again."""
        import optuna

        objective = self.spec.objective
        for frozen in ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            run_id = frozen.user_attrs.get("kfnb_run")
            record = self.store.get_run(run_id) if run_id else None
            if record is not None and record.status == "SUCCEEDED" and objective in record.metrics:
                ostudy.tell(frozen.number, record.metrics[objective])
                continue
            if record is not None and record.status == "PRUNED":
                ostudy.tell(frozen.number, state=_state("PRUNED"))
                continue
            ostudy.tell(frozen.number, state=_state("FAIL"))
            ostudy.enqueue_trial(dict(frozen.params), skip_if_exists=False)
            if record is None:
                continue
            if record.status not in TERMINAL_RUN:
                self.store.set_run_status(record.id, "FAILED", error="its study's runner stopped")
            spec = dict(record.spec or {})
            spec["trial"] = {**dict(spec.get("trial") or {}), "retried": True}
            self.store.set_spec(record.id, spec)

    def _trial_event(self, number: int, run_id: str, status: str) -> None:
        self.store.event(self.study_id, "trial", {"trial": number, "run": run_id, "status": status})


def _state(name: str) -> Any:
    import optuna

    return getattr(optuna.trial.TrialState, name)


def _child_error(child: Run) -> str:
    """Why a trial's run failed: its error, else its failing step's."""
    for step in child.steps:
        if step.status == "FAILED" and step.error:
            message = step.error.get("message") or step.error.get("ename") or str(step.error)
            return f"step {step.name!r} failed: {message}"
    return child.error or f"run {child.id} ended {child.status}"
