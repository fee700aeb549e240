"""The process that drives one local training job: ``python -m kfnb.training.supervise RUN_ID``.

Started by ``kfnb.training.local`` in a session of its own, so the job outlives the kernel (or
script) that launched it: a kernel restart does not stop a long job, and any process re-attaches
by the run id. It

1. takes the run over in the store (``set_runner``: ``recover()`` now follows this process) and
   prints ``ready`` for the launcher;
2. leases the job's GPUs machine-wide (``kfnb.gpus``), waiting visibly while others hold them;
3. starts the program: ``python -m torch.distributed.run --standalone --nproc-per-node N`` (plain
   ``python`` for one process), in the launcher's interpreter and environment plus
   ``CUDA_VISIBLE_DEVICES`` (the leased GPUs; empty for a CPU job), the notebook's folder as cwd,
   in a process group of its own;
4. merges the ranks' logs into ``logs/all.log`` with ``[rank N]`` prefixes as they grow;
5. stops the whole tree when the run is cancelled (``kfnb cancel``, Stop: SIGTERM, then SIGKILL);
6. records the end: a failing rank's own error and traceback (``errors/rank-N.json``, written by
   ``kfnb.training.entry``) are the job's error, not torchrun's ``ChildFailedError``. A rank
   that died without a word (killed, out of memory, ``os._exit``) is named from the root cause
   torchrun reports in its log, in one line (``rank 1 died (SIGKILL)``); torchrun's report is
   kept in the step's ``detail``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..gpus import GpuLease, Held
from ..tracking import TERMINAL_RUN, Store
from ..tracking.store import default_home
from .entry import TRAIN_DIR_ENV, rank_error, rank_log

JOB_FILE = "job.json"
AGENT_LOG = "logs/agent.log"
MERGED_LOG = "logs/all.log"
POLL_S = 0.25
STOP_GRACE_S = 5.0


def _die_with_parent() -> None:
    """In the program's process, before exec (Linux): SIGKILL when the supervisor dies."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Supervisor:
    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.job = Path(store.get_run(run_id).artifacts_dir)
        self.spec: dict[str, Any] = json.loads((self.job / JOB_FILE).read_text())
        self.procs = int(self.spec["procs"])
        self.ranks = [f"rank-{n}" for n in range(self.procs)]
        self.held: Held | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._merging = threading.Event()

    # -- steps of the job ---------------------------------------------------------------------
    def run(self) -> None:
        try:
            if not self._lease():
                return
            self._start()
            status, error = self._follow()
            self._end(status, error)
        except BaseException as err:
            self._stop()
            self.store.set_run_status(
                self.run_id, "FAILED", error=f"the job's supervisor failed: {err!r}"
            )
            raise
        finally:
            if self.held is not None:
                self.held.release()

    def _cancelled(self) -> bool:
        """Whether the run was asked to stop (a PENDING run is CANCELED at once)."""
        return (
            self.store.is_cancel_requested(self.run_id)
            or self.store.get_run(self.run_id).status in TERMINAL_RUN
        )

    def _lease(self) -> bool:
        """Take the job's GPUs, waiting while others hold them; False if cancelled meanwhile."""
        count = int(self.spec.get("gpus") or 0)
        if not count:
            return True
        lease = GpuLease(self.store.home / "gpus")
        ids = list(self.spec["gpu_ids"])
        said = None
        while True:
            self.held = lease.take(ids, count, f"train job {self.run_id}")
            if self.held is not None:
                return True
            why = ", ".join(f"GPU {g} is held by {w}" for g, w in lease.holders(ids).items())
            if why and why != said:
                said = why
                self.store.event(self.run_id, "warning", {"message": f"waiting for GPUs: {why}"})
            if self._cancelled():
                if self.store.get_run(self.run_id).status not in TERMINAL_RUN:
                    self.store.set_run_status(self.run_id, "CANCELED")
                return False
            time.sleep(POLL_S * 2)

    def _command(self, program: Path) -> list[str]:
        python = self.spec.get("python") or sys.executable
        if self.procs == 1:
            return [python, str(program)]
        return [
            python, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={self.procs}", "--max-restarts=0", str(program),
        ]  # fmt: skip

    def _start(self) -> None:
        env = {**os.environ, **{str(k): str(v) for k, v in (self.spec.get("env") or {}).items()}}
        env.update(
            {
                "KFNB_HOME": str(self.store.home),
                "KFNB_RUN_ID": self.run_id,
                TRAIN_DIR_ENV: str(self.job),
                "CUDA_VISIBLE_DEVICES": ",".join(self.held.gpus) if self.held else "",
            }
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        (self.job / "logs").mkdir(parents=True, exist_ok=True)
        self.store.set_run_status(self.run_id, "RUNNING")
        for n, name in enumerate(self.ranks):
            rank_log(self.job, n).touch()
            self.store.set_step_status(
                self.run_id,
                name,
                "RUNNING",
                log=str(rank_log(self.job, n)),
                gpus=self.held.gpus if self.held else [],
            )
        with open(self.job / AGENT_LOG, "ab") as agent:
            self.proc = subprocess.Popen(
                self._command(self.job / "program" / "program.py"),
                cwd=self.spec.get("cwd") or None,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=agent,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        threading.Thread(target=self._merge, name="kfnb-log-merge", daemon=True).start()

    def _follow(self) -> tuple[str, str | None]:
        assert self.proc is not None
        while True:
            try:
                code = self.proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                if self._cancelled():
                    self._stop()
                    return "CANCELED", None
        self._merging.set()
        return ("SUCCEEDED", None) if code == 0 else ("FAILED", self._failure(code))

    def _stop(self) -> None:
        """Stop the program's whole process group: SIGTERM, then SIGKILL after a grace."""
        proc = self.proc
        if proc is None:
            return
        for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 30.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # ranks that ignored the agent's end
            os.killpg(proc.pid, signal.SIGKILL)
        self._merging.set()

    # -- the end ---------------------------------------------------------------------------------
    def _errors(self) -> list[dict[str, Any]]:
        found = []
        for n in range(self.procs):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(rank_error(self.job, n).read_text()))
        return sorted(found, key=lambda e: e.get("time", 0))

    def _died(self, errors: list[dict[str, Any]]) -> tuple[int, str] | None:
        """The rank torchrun saw end first, when it said nothing itself (killed, out of memory,
        ``os._exit``): its peers' errors (a connection closed under a collective) came after."""
        died = root_cause(_tail(self.job / AGENT_LOG, 60))
        if died is None or any(e["rank"] == died[0] for e in errors):
            return None
        return died

    def _failure(self, code: int) -> str:
        errors = self._errors()
        died = self._died(errors)
        if died is not None:
            return died[1]
        if errors:
            first = errors[0]
            return f"rank {first['rank']} failed: {first['type']}: {first['message']}"
        tail = _tail(self.job / AGENT_LOG)
        return f"the program exited with code {code}" + (f":\n{tail}" if tail else "")

    def _end(self, status: str, error: str | None) -> None:
        errors = {e["rank"]: e for e in self._errors()}
        first = min(errors.values(), key=lambda e: e.get("time", 0)) if errors else None
        died = self._died(list(errors.values())) if status == "FAILED" else None
        if died is not None:  # the rank that died first is the cause; the others followed it
            report = _tail(self.job / AGENT_LOG, 60)
            for n, name in enumerate(self.ranks):
                if n == died[0]:
                    fault = {"message": died[1], "detail": report}
                elif n in errors:
                    e = errors[n]
                    fault = {
                        "message": f"{e['type']}: {e['message']} (after {died[1]})",
                        "ename": e["type"],
                        "evalue": e["message"],
                        "traceback": e["traceback"],
                    }
                else:
                    fault = {"message": f"stopped: {died[1]}"}
                self.store.set_step_status(self.run_id, name, "FAILED", error=fault)
            self.store.set_run_status(self.run_id, status, error=error)  # type: ignore[arg-type]
            return
        for n, name in enumerate(self.ranks):
            if status == "SUCCEEDED":
                self.store.set_step_status(self.run_id, name, "SUCCEEDED")
            elif status == "CANCELED":
                self.store.set_step_status(self.run_id, name, "CANCELED")
            elif n in errors:
                e = errors[n]
                after = (
                    "" if e is first or first is None else f" (after rank {first['rank']} failed)"
                )
                self.store.set_step_status(
                    self.run_id,
                    name,
                    "FAILED",
                    error={
                        "message": f"{e['type']}: {e['message']}{after}",
                        "ename": e["type"],
                        "evalue": e["message"],
                        "traceback": e["traceback"],
                    },
                )
            else:
                why = f"stopped: rank {first['rank']} failed" if first else error
                self.store.set_step_status(self.run_id, name, "FAILED", error={"message": why})
        self.store.set_run_status(self.run_id, status, error=error)  # type: ignore[arg-type]

    # -- logs ------------------------------------------------------------------------------------
    def _merge(self) -> None:
        """Copy complete lines of the rank logs into ``logs/all.log`` as ``[rank N] line``."""
        offsets = [0] * self.procs
        partial = [b""] * self.procs
        with open(self.job / MERGED_LOG, "ab") as out:
            while True:
                last = self._merging.is_set()
                for n in range(self.procs):
                    with contextlib.suppress(OSError), open(rank_log(self.job, n), "rb") as f:
                        f.seek(offsets[n])
                        data = f.read()
                        offsets[n] += len(data)
                    lines = (partial[n] + data).split(b"\n")
                    partial[n] = lines.pop()
                    if last and partial[n]:
                        lines.append(partial[n])
                        partial[n] = b""
                    for line in lines:
                        out.write(b"[rank %d] %s\n" % (n, line))
                out.flush()
                if last:
                    return
                time.sleep(POLL_S)


_FIELD = re.compile(r"^\s*(rank|exitcode)\s*:\s*(-?\d+)", re.MULTILINE)


def root_cause(report: str) -> tuple[int, str] | None:
    """``(rank, "rank 1 died (SIGKILL)")`` from the root cause torchrun's agent reports in its
    log when a rank ends without an error of its own (a signal, an exit code); None if none."""
    _, found, cause = report.rpartition("Root Cause")
    if not found:
        return None
    fields = {k: int(v) for k, v in _FIELD.findall(cause)}
    if "rank" not in fields or "exitcode" not in fields:
        return None
    rank, code = fields["rank"], fields["exitcode"]
    if code < 0:
        try:
            how = signal.Signals(-code).name
        except ValueError:
            how = f"signal {-code}"
        return rank, f"rank {rank} died ({how})"
    return rank, f"rank {rank} exited with code {code}"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m kfnb.training.supervise RUN_ID", file=sys.stderr)
        return 2
    store = Store(default_home())
    run_id = store.resolve_id(args[0])
    if store.get_run(run_id).status in TERMINAL_RUN:  # cancelled before it could start
        print("ready", flush=True)
        return 0
    store.set_runner(run_id, os.getpid())
    print("ready", flush=True)
    # from here on nothing may write to the launcher's pipe: it may be gone
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    supervisor = Supervisor(store, run_id)
    signal.signal(signal.SIGTERM, lambda *_: store.request_cancel(run_id))
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
