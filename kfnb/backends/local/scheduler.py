"""The local scheduler: runs a pipeline's steps on this machine, in parallel where it can.

One scheduler thread per run. It starts each step as soon as every step it depends on has
succeeded and the pool has the slot, CPUs, memory and GPUs it asks for; each step runs in a
worker process of its own (``worker.py``) in a new process group, so that cancelling or timing
out a step kills its kernel too. The scheduler is the only writer of the run's and steps'
statuses in the run store:

- a failed step is retried up to its ``retries``; then it is FAILED, every step downstream of it
  is SKIPPED, and independent branches run on;
- a step past its ``timeout`` is killed and counts as failed (retries apply);
- a cancel (``RunHandle.cancel()``, Ctrl-C, or ``kfnb cancel`` from another process through the
  store) kills the running steps and marks what has not finished CANCELED;
- when a step that provides a pipeline metric succeeds, the metric's value is recorded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ...dag import Pipeline, Step
from ...tracking import InvalidTransition, Store
from .processes import descendants
from .resources import Grant, Pool

log = logging.getLogger("kfnb.local")

# ``python -m kfnb.backends.local.worker`` would import this package, and nbformat with it,
# before the worker could skip the slow optional imports (see kfnb._startup).
WORKER_ENTRY = ("import kfnb._startup as s; s.skip_slow_optional_imports(); "
                "from kfnb.backends.local.worker import main; raise SystemExit(main())")


@dataclass
class RunPaths:
    """Where a run keeps its files (inside its artifacts directory)."""

    root: Path

    @property
    def steps(self) -> Path:
        return self.root / "steps"

    @property
    def executed(self) -> Path:
        return self.root / "executed"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def work(self) -> Path:
        return self.root / ".work"

    def make(self) -> None:
        for p in (self.steps, self.executed, self.logs, self.data, self.work):
            p.mkdir(parents=True, exist_ok=True)


@dataclass
class _Running:
    step: Step
    proc: subprocess.Popen[bytes]
    grant: Grant
    log_file: IO[bytes]
    result: Path
    deadline: float | None
    timed_out: bool = False


class Scheduler:
    """Drives one run to its end. Create it, then call ``run()`` in a thread."""

    def __init__(self, *, pipeline: Pipeline, run_id: str, store: Store, pool: Pool,
                 paths: RunPaths, params: dict[str, Any], hashes: dict[str, str],
                 cwd: Path, kernel_name: str | None, poll_interval: float = 0.05,
                 kill_grace: float = 5.0) -> None:
        self.pipeline = pipeline
        self.run_id = run_id
        self.store = store
        self.pool = pool
        self.paths = paths
        self.params = params
        self.hashes = hashes
        self.cwd = cwd
        self.kernel_name = kernel_name
        self.poll_interval = poll_interval
        self.kill_grace = kill_grace
        self.cancel_event = threading.Event()
        self.state: dict[str, str] = {s.name: "PENDING" for s in pipeline.steps}
        self.attempts: dict[str, int] = {s.name: 0 for s in pipeline.steps}
        self.errors: dict[str, str] = {}
        self.running: dict[str, _Running] = {}
        self._order = [s.name for s in pipeline.toposort()]
        self._last_cancel_check = 0.0

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.store.set_run_status(self.run_id, "RUNNING")
        except InvalidTransition:  # cancelled before it started
            return
        try:
            while True:
                if self._cancel_requested():
                    self._cancel()
                    return
                self._reap()
                self._skip_blocked()
                self._launch()
                if not self.running and not self._launchable():
                    break
                time.sleep(self.poll_interval)
            self._finish()
        except BaseException as err:  # a bug or KeyboardInterrupt in the runner: leave no orphans
            self._kill_all()
            message = f"the local runner failed: {type(err).__name__}: {err}"
            log.error("%s\n%s", message, traceback.format_exc())
            self._end_steps("FAILED", {"message": message})
            self._set_run("FAILED", message)
            if not isinstance(err, Exception):
                raise

    def _cancel_requested(self) -> bool:
        if self.cancel_event.is_set():
            return True
        now = time.monotonic()
        if now - self._last_cancel_check < 0.25:
            return False
        self._last_cancel_check = now
        if self.store.is_cancel_requested(self.run_id):
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
                blocked = [d for d in step.after
                           if self.state[d] in ("FAILED", "SKIPPED", "CANCELED")]
                if blocked:
                    reason = f"skipped because step {blocked[0]!r} did not succeed"
                    self._set_step(name, "SKIPPED", error={"message": reason})
                    changed = True

    # -- starting steps -------------------------------------------------------------------------
    def _launch(self) -> None:
        for step in self._launchable():
            grant = self.pool.acquire(step)
            if grant is None:
                continue
            try:
                self._start(step, grant)
            except BaseException:
                self.pool.release(grant)
                raise

    def _start(self, step: Step, grant: Grant) -> None:
        name = step.name
        self.attempts[name] += 1
        attempt = self.attempts[name]
        log_path = self.paths.logs / f"{name}.log"
        output = self.paths.executed / f"{name}.ipynb"
        result = self.paths.work / f"{name}.{attempt}.result.json"
        spec_path = self.paths.work / f"{name}.{attempt}.spec.json"
        spec = {
            "step": name, "notebook": str(self.paths.steps / f"{name}.ipynb"),
            "output": str(output), "parameters": self.params, "cwd": str(self.cwd),
            "kernel_name": self.kernel_name, "result": str(result), "runner_pid": os.getpid(),
        }
        spec_path.write_text(json.dumps(spec, default=repr))
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed when the step ends
        if attempt > 1:
            log_file.write(f"\n--- attempt {attempt} ---\n".encode())
            log_file.flush()
        env = dict(os.environ)
        env.update(KFNB_HOME=str(self.store.home), KFNB_RUN_ID=self.run_id, KFNB_STEP=name,
                   PYTHONUNBUFFERED="1")
        if grant.request.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(grant.gpus)
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER_ENTRY, str(spec_path)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=str(self.cwd), start_new_session=True,
        )
        deadline = time.monotonic() + step.timeout if step.timeout else None
        self.running[name] = _Running(step, proc, grant, log_file, result, deadline)
        self.state[name] = "RUNNING"
        self._set_step(name, "RUNNING", log=str(log_path), output_notebook=str(output),
                       gpus=grant.gpus, hash=self.hashes.get(name))

    # -- finished steps -------------------------------------------------------------------------
    def _reap(self) -> None:
        now = time.monotonic()
        for name, r in list(self.running.items()):
            if r.proc.poll() is None:
                if r.deadline is None or now < r.deadline:
                    continue
                r.timed_out = True
                self._kill(r)
            del self.running[name]
            self.pool.release(r.grant)
            r.log_file.close()
            self._ended(r)

    def _ended(self, r: _Running) -> None:
        name = r.step.name
        if r.timed_out:
            error: dict[str, Any] = {"message": f"step {name!r} timed out after "
                                                f"{r.step.timeout:g} s and was stopped"}
            with open(self.paths.logs / f"{name}.log", "a") as f:
                f.write(f"\n{error['message']}\n")
        else:
            try:
                outcome = json.loads(r.result.read_text())
            except (OSError, ValueError):
                outcome = {"ok": False, "error": {
                    "message": f"step {name!r}: its worker ended with exit code "
                               f"{r.proc.returncode} before reporting a result"}}
            if outcome.get("ok"):
                self._succeeded(r.step)
                return
            error = outcome.get("error") or {"message": f"step {name!r} failed"}
        if self.attempts[name] <= r.step.retries:
            left = r.step.retries - self.attempts[name] + 1
            error = {**error, "retrying": True}
            self._set_step(name, "FAILED", error=error)
            self.store.event(self.run_id, "retry", {"step": name, "attempt": self.attempts[name],
                                                   "left": left})
            self.state[name] = "PENDING"
            return
        self.errors[name] = str(error.get("message"))
        self._set_step(name, "FAILED", error=error)

    def _succeeded(self, step: Step) -> None:
        name = step.name
        output = self.paths.executed / f"{name}.ipynb"
        self.store.add_artifact(self.run_id, "executed notebook", output, step=name)
        for metric in self.pipeline.metrics:
            if metric.step == name:
                self._record_metric(name, metric.name)
        self._set_step(name, "SUCCEEDED")

    def _record_metric(self, step: str, name: str) -> None:
        from ... import marshal

        try:
            value = float(marshal.load(self.paths.data / step, name, step=step))  # type: ignore[arg-type]
        except Exception as err:
            self.store.event(self.run_id, "warning", {
                "step": step, "message": f"metric {name!r} is not a number: {err}"})
            return
        self.store.log_metric(self.run_id, name, value, source=step)

    # -- stopping -------------------------------------------------------------------------------
    def _kill(self, r: _Running) -> None:
        """Stop a worker and its kernel: SIGTERM to the group, SIGKILL after a grace period."""
        below = descendants(r.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(r.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            r.proc.wait(timeout=self.kill_grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(r.proc.pid, signal.SIGKILL)
        r.proc.wait()
        for child in below:  # a kernel left behind by a worker that did not clean up
            with contextlib.suppress(Exception):
                child.kill()

    def _kill_all(self) -> None:
        for name, r in list(self.running.items()):
            self._kill(r)
            self.pool.release(r.grant)
            r.log_file.close()
            del self.running[name]

    def _cancel(self) -> None:
        self._kill_all()
        self._end_steps("CANCELED", {"message": "cancelled"})
        self._set_run("CANCELED", None)

    def _end_steps(self, status: str, error: dict[str, Any]) -> None:
        for name in self._order:
            if self.state[name] in ("PENDING", "RUNNING"):
                self._set_step(name, status, error=error)

    def _finish(self) -> None:
        if all(s in ("SUCCEEDED", "CACHED") for s in self.state.values()):
            self._set_run("SUCCEEDED", None)
            return
        failed = [n for n in self._order if self.state[n] == "FAILED"]
        message = "; ".join(self.errors.get(n, f"step {n!r} failed") for n in failed)
        self._set_run("FAILED", message or "some steps did not run")

    # -- store writes -----------------------------------------------------------------------------
    def _set_step(self, name: str, status: str, **fields: Any) -> None:
        self.state[name] = status
        self.store.set_step_status(self.run_id, name, status, **fields)  # type: ignore[arg-type]

    def _set_run(self, status: str, error: str | None) -> None:
        try:
            self.store.set_run_status(self.run_id, status, error=error)  # type: ignore[arg-type]
        except InvalidTransition:
            log.warning("run %s: could not mark it %s", self.run_id, status)
