"""The local scheduler: runs a pipeline's steps on this machine, in parallel where it can.

One scheduler thread per run. Steps whose results the cache holds are marked CACHED first,
without a kernel. Then the scheduler starts each step as soon as every step it depends on has
succeeded and the resource pool has the slot, CPUs, memory and GPUs it asks for. A step runs in
a thread of its own that takes a fresh kernel from the kernel pool (started ahead of time, see
``kfnb.kernels``) and executes the step notebook with papermill on it (``execute.py``). The
scheduler tells the kernel pool up front how many kernels the run will need, so they start
while the first steps run, and wakes as soon as a step ends: nothing waits on a polling tick.

The scheduler is the only writer of the run's and steps' statuses in the run store:

- a failed step is retried (on a new fresh kernel) up to its ``retries``; then it is FAILED,
  every step downstream of it is SKIPPED, and independent branches run on;
- a step past its ``timeout`` has its kernel killed and counts as failed (retries apply);
- a cancel (``RunHandle.cancel()``, Ctrl-C, or ``kfnb cancel`` from another process through the
  store) kills the running steps' kernels and marks what has not finished CANCELED;
- when a step that provides a pipeline metric succeeds (or is cached), the metric is recorded.

Every run ends, whatever fails. A step's own failures (its code, its kernel dying, a full disk
while it writes its log, notebook or values) are step outcomes: its thread always reports one.
Anything that fails in the scheduler itself (a store write, a bug) fails the run: running
kernels are killed, the steps closed and the run marked FAILED with the cause in ``run.error``.
So that this can be recorded on a full disk, the scheduler holds back a little disk space next
to the run's files (``Reserve``) and gives it up when the disk runs out, and a second one for the
run's end, given up only once every kernel is killed (a step still filling the disk would take
it first). If even then the store cannot record the end, the error goes to stderr and the
scheduler still finishes (``finished``, ``final_status``): nothing waits on it forever. A step
that fails because its files cannot be written (its notebook, log or values on a full disk, a
read-only mount) says so, where and what to do (``runfiles.disk_error``), without kfnb's
traceback.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from ...dag import Pipeline, Step
from ...errors import KfnbError
from ...tracking import InvalidTransition, Store
from .cache import CacheHit, restore
from .demand import KernelDemand
from .resources import Grant, Pool
from .runfiles import Reserve, RunPaths, disk_error

if TYPE_CHECKING:
    from ...kernels import KernelPool, WarmKernel

log = logging.getLogger("kfnb.local")
CANCEL_CHECK_INTERVAL = 0.25  # seconds between looks at the store for `kfnb cancel`
T = TypeVar("T")


@dataclass(eq=False)
class _Running:
    """One attempt of one step, executing in a thread of its own."""

    step: Step
    attempt: int
    grant: Grant
    log_file: IO[str]
    deadline: float | None
    kernel: WarmKernel | None = None
    outcome: dict[str, Any] | None = None
    stopped: bool = False  # killed (cancel, timeout): the thread's outcome no longer counts
    timed_out: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Scheduler:
    """Drives one run to its end. Create it, then call ``run()`` in a thread."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        run_id: str,
        store: Store,
        pool: Pool,
        kernels: KernelPool | None,
        paths: RunPaths,
        params: dict[str, Any],
        hashes: dict[str, str],
        cwd: Path,
        kernel_name: str | None,
        cached: dict[str, CacheHit] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.run_id = run_id
        self.store = store
        self.pool = pool
        self.kernels = kernels
        self.paths = paths
        self.params = params
        self.hashes = hashes
        self.cwd = cwd
        self.kernel_name = kernel_name
        self.cached = dict(cached or {})
        self.env = dict(env or {})  # the environment the settings were read from
        self.cancel_event = threading.Event()
        self.state: dict[str, str] = {s.name: "PENDING" for s in pipeline.steps}
        self.attempts: dict[str, int] = {s.name: 0 for s in pipeline.steps}
        self.errors: dict[str, dict[str, Any]] = {}  # what each failed step ended with
        self.running: dict[str, _Running] = {}
        self._order = [s.name for s in pipeline.toposort()]
        self._ended_q: queue.Queue[_Running | None] = queue.Queue()
        self._demand: KernelDemand | None = None
        self._last_cancel_check = 0.0
        self._gpu_waits: dict[str, str] = {}  # step -> the GPU wait last reported
        self.reserve = Reserve(paths.work / "reserve")
        # given up only once every kernel is killed: a step still filling the disk would take
        # the first one as soon as it is given up, and nothing then could record the run's end
        self.end_reserve = Reserve(paths.work / "reserve-end")
        self.finished = threading.Event()  # run() returned, whatever the store could record
        self.final_status: str | None = None  # the status the run ended with, recorded or not

    def cancel(self) -> None:
        """Stop the run; once the scheduler has finished, make sure its end is recorded (a run
        whose end the store could not record is marked CANCELED now)."""
        self.cancel_event.set()
        self._ended_q.put(None)  # wake the scheduler
        if self.finished.is_set():
            self._record_end("CANCELED", None)

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> None:
        """Drive the run to its end; returns only once it ended (never raises for a failure,
        only re-raises KeyboardInterrupt and the like once the run is marked FAILED)."""
        try:
            try:
                self._store(self.store.set_run_status, self.run_id, "RUNNING")
            except InvalidTransition:  # cancelled before it started
                self.final_status = "CANCELED"
                return
            self.reserve.hold()
            self.end_reserve.hold()
            self._loop()
        except BaseException as err:  # a store write, a bug, Ctrl-C: end the run, leave no orphans
            self._fail(err)
            if not isinstance(err, Exception):
                raise
        finally:
            self._wind_down()

    def _loop(self) -> None:
        self._restore_cached()
        if self.kernels is not None:
            pending = len(self.pipeline.steps) - len(self.cached)
            self._demand = KernelDemand(self.kernels, pending, len(self._launchable()))
            from . import execute  # noqa: F401 - papermill loads while the kernels boot
        while True:
            if self._cancel_requested():
                self._cancel()
                return
            self._reap()
            self._skip_blocked()
            self._launch()
            if not self.running and not self._launchable():
                break
            self._wait()
        self._finish()

    def _fail(self, err: BaseException) -> None:
        """The scheduler itself failed: kill the steps, close them, mark the run FAILED."""
        message = f"the local runner failed: {type(err).__name__}: {err}"
        files = disk_error(err, self.paths.root, "the run could not write its files")
        error: dict[str, Any] = {"message": message}
        if files is not None:  # a full disk, a read-only mount: what to do, not a traceback
            message = str(files)
            error = {"message": message, "fix": files.fix}
        # an expected failure (a full disk, a store that cannot be written) needs no traceback
        expected = files is not None or isinstance(err, KfnbError)
        if expected:  # the run's record (or the line _record_end prints) says it
            log.info("run %s: %s", self.run_id, message)
        else:
            log.error("run %s: %s\n%s", self.run_id, message, traceback.format_exc())
        self._kill_all()
        self.reserve.release()  # the store needs the space more than the run does now
        self.end_reserve.release()  # (and no kernel is left to take it first)
        try:
            self._end_steps("FAILED", error)
        except Exception as end_err:  # the run's FAILED below closes them all at once
            log.info("run %s: could not close its steps one by one: %s", self.run_id, end_err)
        steps = [str(e["message"]) for e in self.errors.values() if e.get("message")]
        self._record_end("FAILED", "; ".join([*steps, message]))  # why the steps failed, too

    def _wind_down(self) -> None:
        """Whatever happened: give the pool's kernels back, the disk space, the store's
        connection; then say that the scheduler is done."""
        try:
            if self._demand is not None:
                self._demand.release()
        except Exception as err:
            log.warning("run %s: %s", self.run_id, err)
        finally:
            self.reserve.release()
            self.end_reserve.release()
            try:
                self.store.close()  # this thread's connection: a long-lived process runs many runs
            except Exception as err:
                log.warning("run %s: %s", self.run_id, err)
            self.finished.set()

    def _wait(self) -> None:
        """Sleep until a step ends, a deadline passes, a cancel comes, or it is time to look
        for a cancel request in the store."""
        timeout = CANCEL_CHECK_INTERVAL
        deadlines = [r.deadline for r in self.running.values() if r.deadline is not None]
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - time.monotonic()))
        try:
            item = self._ended_q.get(timeout=timeout)
        except queue.Empty:
            return
        if item is not None:
            self._ended_q.put(item)  # _reap takes it

    def _cancel_requested(self) -> bool:
        if self.cancel_event.is_set():
            return True
        now = time.monotonic()
        if now - self._last_cancel_check < CANCEL_CHECK_INTERVAL:
            return False
        self._last_cancel_check = now
        try:  # the runner's heartbeat: if it dies, recover() dates the run's end by this
            (self.paths.work / "heartbeat").touch()
        except OSError as err:  # a full or read-only disk: the run's records date it instead
            log.debug("run %s: no heartbeat: %s", self.run_id, err)
        try:
            requested = self.store.is_cancel_requested(self.run_id)
        except Exception as err:  # a busy or full disk: look again next time
            log.warning("run %s: could not look for a cancel request: %s", self.run_id, err)
            return False
        if requested:
            self.cancel_event.set()
            return True
        return False

    def _launchable(self) -> list[Step]:
        ready = []
        for name in self._order:
            if self.state[name] != "PENDING" or name in self.running:
                continue
            step = self.pipeline.step(name)
            if all(self.state[dep] in ("SUCCEEDED", "CACHED") for dep in step.after):
                ready.append(step)
        return ready

    def _skip_blocked(self) -> None:
        changed = True
        while changed:
            changed = False
            for name in self._order:
                if self.state[name] != "PENDING":
                    continue
                step = self.pipeline.step(name)
                blocked = [
                    d for d in step.after if self.state[d] in ("FAILED", "SKIPPED", "CANCELED")
                ]
                if blocked:
                    reason = f"skipped because step {blocked[0]!r} did not succeed"
                    self._set_step(name, "SKIPPED", error={"message": reason})
                    changed = True

    # -- cached steps ---------------------------------------------------------------------------
    def _restore_cached(self) -> None:
        for name in self._order:
            hit = self.cached.get(name)
            if hit is None:
                continue
            try:
                restore(
                    hit,
                    self.paths.data,
                    self.paths.executed / f"{name}.ipynb",
                    self.paths.logs / f"{name}.log",
                )
            except OSError as err:  # e.g. the earlier run was deleted meanwhile: run the step
                log.warning("step %s: cache unusable (%s); running it", name, err)
                del self.cached[name]
                continue
            output = self.paths.executed / f"{name}.ipynb"
            self._set_step(
                name,
                "CACHED",
                log=str(self.paths.logs / f"{name}.log"),
                output_notebook=str(output) if output.exists() else None,
                hash=self.hashes.get(name),
                cached_from=hit.origin,
            )
            self._copy_logged_metrics(hit)
            self._record_outputs(self.pipeline.step(name), output)

    def _copy_logged_metrics(self, hit: CacheHit) -> None:
        """What the step logged with ``kfnb.log_metric`` when it ran (its curves: a study's
        objective, say) is part of its results: a cached step records it again. Pipeline
        metrics are recorded from the outputs, as for a step that runs."""
        source = hit.source
        own = {m.name for m in self.pipeline.metrics if m.step == hit.step}
        for metric in self.store.metrics(source.run_id):
            if metric.source == source.name and metric.name not in own:
                self.store.log_metric(
                    self.run_id, metric.name, metric.value, step=metric.step, source=hit.step
                )

    # -- starting steps -------------------------------------------------------------------------
    def _launch(self) -> None:
        for step in self._launchable():
            grant = self.pool.acquire(step, f"run {self.run_id} step {step.name}")
            if grant is None:
                self._note_gpu_wait(step.name)
                continue
            self._gpu_waits.pop(step.name, None)
            try:
                self._start(step, grant)
            except BaseException:
                self.pool.release(grant)
                raise

    def _note_gpu_wait(self, name: str) -> None:
        """A step waits for GPUs another process holds: say so once (and again when the
        holders change), as a warning event the CLI, widgets and panel show."""
        why = self.pool.gpu_wait(name)
        if why is None or self._gpu_waits.get(name) == why:
            return
        self._gpu_waits[name] = why
        self.store.event(
            self.run_id, "warning", {"step": name, "message": f"waiting for GPUs: {why}"}
        )

    def _start(self, step: Step, grant: Grant) -> None:
        name = step.name
        self.attempts[name] += 1
        attempt = self.attempts[name]
        log_path = self.paths.logs / f"{name}.log"
        output = self.paths.executed / f"{name}.ipynb"
        log_file = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed when the step ends
        try:
            if attempt > 1:
                log_file.write(f"\n--- attempt {attempt} ---\n")
            self._set_step(
                name,
                "RUNNING",
                log=str(log_path),
                output_notebook=str(output),
                gpus=grant.gpus,
                hash=self.hashes.get(name),
            )
        except BaseException:
            _close(log_file)
            raise
        deadline = time.monotonic() + step.timeout if step.timeout else None
        r = _Running(step, attempt, grant, log_file, deadline)
        if self._demand is not None:
            self._demand.launched()
        thread = threading.Thread(
            target=self._execute,
            args=(r, output),
            daemon=True,
            name=f"kfnb-step-{self.run_id}-{name}",
        )
        try:
            thread.start()
        except BaseException:
            _close(log_file)
            raise
        self.running[name] = r

    def _step_env(self, r: _Running) -> dict[str, str]:
        """The step kernel's environment: the one the run's settings were read from (a pooled
        kernel started earlier has an older one), the step's own ``env`` over it, and where the
        step reports to (which the step's ``env`` cannot change, nor the GPU ids a step that asks
        for GPUs is granted)."""
        env = dict(self.env)
        env.update(r.step.env)
        env.update(KFNB_HOME=str(self.store.home), KFNB_RUN_ID=self.run_id, KFNB_STEP=r.step.name)
        if r.grant.request.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(r.grant.gpus)
        return env

    def _execute(self, r: _Running, output: Path) -> None:
        """In the step's thread: take a fresh kernel, run the notebook on it, report. It always
        reports (the scheduler waits for it), whatever fails here."""
        outcome: dict[str, Any] = {
            "ok": False,
            "error": {"message": f"step {r.step.name!r} failed"},
        }
        try:
            outcome = self._run_step(r, output)
        except BaseException as err:
            outcome = {
                "ok": False,
                "error": {
                    "message": f"step {r.step.name!r} could not run: {type(err).__name__}: {err}",
                    "traceback": traceback.format_exc(),
                },
            }
        finally:
            r.outcome = outcome
            self._ended_q.put(r)

    def _run_step(self, r: _Running, output: Path) -> dict[str, Any]:
        from .execute import execute_step

        if self.kernels is None:
            raise RuntimeError("this run has no kernel pool (every step was cached)")
        kernel = self.kernels.acquire()
        if self._demand is not None:
            self._demand.took()
        try:
            with r.lock:
                r.kernel = kernel
                stopped = r.stopped
            if stopped:
                return {"ok": False, "error": {"message": f"step {r.step.name!r} was stopped"}}
            return execute_step(
                step=r.step.name,
                notebook=self.paths.steps / f"{r.step.name}.ipynb",
                output=output,
                parameters=self.params,
                kernel=kernel,
                cwd=str(self.cwd),
                env=self._step_env(r),
                log=r.log_file,
                kernel_name=self.kernel_name,
            )
        finally:
            self.kernels.discard(kernel)

    # -- finished steps -------------------------------------------------------------------------
    def _reap(self) -> None:
        while True:
            try:
                item = self._ended_q.get_nowait()
            except queue.Empty:
                break
            if item is None or self.running.get(item.step.name) is not item:
                continue  # a wake-up, or a step already killed and accounted for
            del self.running[item.step.name]
            self.pool.release(item.grant)
            _close(item.log_file)
            self._ended(item)
        now = time.monotonic()
        for name, r in list(self.running.items()):
            if r.deadline is not None and now >= r.deadline:
                r.timed_out = True
                self._stop(r)
                del self.running[name]
                self._ended(r)

    def _ended(self, r: _Running) -> None:
        name = r.step.name
        if r.timed_out:
            error: dict[str, Any] = {
                "message": f"step {name!r} timed out after {r.step.timeout:g} s and was stopped"
            }
        else:
            outcome = r.outcome or {"ok": False}
            if outcome.get("ok"):
                self._succeeded(r.step)
                return
            error = self._disk_cause(
                name, outcome.get("error") or {"message": f"step {name!r} failed"}
            )
        if self.reserve.disk_full():  # what failed it may be the disk: let the store record it
            self.reserve.release()
        self._append_log(name, str(error.get("message", "failed")))
        if self.attempts[name] <= r.step.retries:
            left = r.step.retries - self.attempts[name] + 1
            error = {**error, "retrying": True}
            self._set_step(name, "FAILED", error=error)
            self._store(
                self.store.event,
                self.run_id,
                "retry",
                {"step": name, "attempt": self.attempts[name], "left": left},
            )
            self.state[name] = "PENDING"
            return
        # kept before the write: a store that cannot take it fails the run (_fail), which
        # still closes the step with its own error
        self.errors[name] = error
        self._set_step(name, "FAILED", error=error)

    def _disk_cause(self, name: str, error: dict[str, Any]) -> dict[str, Any]:
        """A step that failed because its files could not be written (its notebook, log or
        values on a full disk, a read-only mount): say so, where, and what to do, instead of
        kfnb's or papermill's traceback (kept as ``detail``). An error in the user's own cell is
        put down to the disk only while the run's disk is full (the cell may write elsewhere)."""
        cell = error.get("cell")
        if cell is not None and not self.reserve.disk_full():
            return error
        if cell is not None:
            what = f"step {name!r} failed at cell {cell}"
        elif error.get("role") == "outputs":
            what = f"step {name!r} failed while saving its outputs"
        else:
            what = f"step {name!r} could not write its notebook or log"
        text = f"{error.get('ename', '')}: {error.get('evalue', '')}\n{error.get('message', '')}"
        cause = disk_error(text, self.paths.root, what)
        if cause is None:
            return error
        if cell is not None:  # the user's traceback stays: it is their code
            return {**error, "message": str(cause), "fix": cause.fix}
        rest = {k: v for k, v in error.items() if k != "traceback"}
        return {**rest, "message": str(cause), "fix": cause.fix, "detail": error.get("traceback")}

    def _append_log(self, step: str, line: str) -> None:
        """Add a line to a step's log, if the disk lets us (the store has it anyway)."""
        try:
            with open(self.paths.logs / f"{step}.log", "a", encoding="utf-8") as f:
                f.write(f"\n{line}\n")
        except OSError as err:
            log.warning("run %s: could not write to the log of step %s: %s", self.run_id, step, err)

    def _succeeded(self, step: Step) -> None:
        output = self.paths.executed / f"{step.name}.ipynb"
        self._record_outputs(step, output)
        self._set_step(step.name, "SUCCEEDED")

    def _record_outputs(self, step: Step, output: Path) -> None:
        if output.exists():
            self.store.add_artifact(self.run_id, "executed notebook", output, step=step.name)
        for metric in self.pipeline.metrics:
            if metric.step == step.name:
                self._record_metric(step.name, metric.name)

    def _record_metric(self, step: str, name: str) -> None:
        from ... import marshal

        try:
            value = float(marshal.load(self.paths.data / step, name, step=step))  # type: ignore[arg-type]
        except Exception as err:
            self.store.event(
                self.run_id,
                "warning",
                {"step": step, "message": f"metric {name!r} is not a number: {err}"},
            )
            return
        self.store.log_metric(self.run_id, name, value, source=step)

    # -- stopping -------------------------------------------------------------------------------
    def _stop(self, r: _Running) -> None:
        """Kill a step's kernel (and everything it started) now; its thread ends by itself."""
        with r.lock:
            r.stopped = True
            kernel = r.kernel
        if kernel is not None and self.kernels is not None:
            self.kernels.kill(kernel)
        self.pool.release(r.grant)
        _close(r.log_file)

    def _kill_all(self) -> None:
        for name, r in list(self.running.items()):
            del self.running[name]
            try:
                self._stop(r)
            except Exception as err:  # one kernel that would not die must not spare the others
                log.error("run %s: could not stop step %s: %s", self.run_id, name, err)

    def _cancel(self) -> None:
        self._kill_all()
        self._end_steps("CANCELED", {"message": "cancelled"})
        self._set_run("CANCELED", None)

    def _end_steps(self, status: str, error: dict[str, Any]) -> None:
        """Close the steps not closed yet with ``error``; a step whose own failure the store
        could not take (a full disk) gets that instead."""
        for name in self._order:
            if self.state[name] in ("PENDING", "RUNNING"):
                own = self.errors.get(name)
                if own is not None:
                    self._set_step(name, "FAILED", error=own)
                else:
                    self._set_step(name, status, error=error)

    def _finish(self) -> None:
        if all(s in ("SUCCEEDED", "CACHED") for s in self.state.values()):
            self._set_run("SUCCEEDED", None)
            return
        failed = [n for n in self._order if self.state[n] == "FAILED"]
        message = "; ".join(
            str(self.errors.get(n, {}).get("message") or f"step {n!r} failed") for n in failed
        )
        self._set_run("FAILED", message or "some steps did not run")

    # -- store writes -----------------------------------------------------------------------------
    def _store(self, write: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A store write; if it fails on a full disk, once more with the reserve given up."""
        try:
            return write(*args, **kwargs)
        except InvalidTransition:
            raise
        except Exception:
            if not (self.reserve.disk_full() and self.reserve.release()):
                raise
            log.warning("run %s: the disk is full; gave up the space held back", self.run_id)
            return write(*args, **kwargs)

    def _set_step(self, name: str, status: str, **fields: Any) -> None:
        self._store(self.store.set_step_status, self.run_id, name, status, **fields)
        self.state[name] = status  # once recorded: a failed write leaves the step to be closed

    def _set_run(self, status: str, error: str | None) -> None:
        try:
            self._store(self.store.set_run_status, self.run_id, status, error=error)
        except InvalidTransition:
            log.warning("run %s: could not mark it %s", self.run_id, status)
        self.final_status = status

    def _record_end(self, status: str, error: str | None) -> None:
        """Mark the run ``status`` unless it already ended; never raises: if the store cannot
        record it, say so on stderr (the scheduler ends all the same)."""
        try:
            run = self.store.get_run(self.run_id)
            if run.done:
                self.final_status = run.status
                return
            self._set_run(status, error)
        except Exception as err:
            self.final_status = self.final_status or status
            why = f" ({error})" if error and str(err) not in error else ""
            print(
                f"kfnb: run {self.run_id} ended {status}{why}, but the run store could not "
                f"record it: {err}",
                file=sys.stderr,
                flush=True,
            )


def _close(f: IO[str]) -> None:
    """Close a step's log; a full disk may refuse the last buffered lines."""
    try:
        f.close()
    except OSError as err:
        log.warning("could not write the end of a step's log %s: %s", f.name, err)
