"""Is a run's runner gone? What ``recover()`` asks of each unfinished run, and when it may ask.

A pid is only meaningful where it was read. Two containers that share ``KFNB_HOME`` (and often
a host name) have different PID namespaces: a process alive in one has no pid, or another
process's pid, in the other. So ``create_run`` records with the pid and its start time the
runner's **identity** (``runs.runner_identity``, JSON): the kernel's boot id
(``/proc/sys/kernel/random/boot_id``, new at each boot) and the PID namespace the pid number
belongs to (the inode of ``/proc/self/ns/pid`` of the recording process, which read the pid).
The checking process compares them with its own:

==============================  =================================  ===========================
boot id                         PID namespace                      verdict
==============================  =================================  ===========================
same                            same                               pid + start time decide
same                            another (another container)        cannot see it: left alone
another, same host name         any                                the machine restarted: dead
another, another host name      any                                another machine: left alone
unknown (an older kfnb's run,   -                                  same host name: pid + start
or no ``/proc`` here)                                              time decide, as before
==============================  =================================  ===========================

``verdict`` returns why a runner is gone, or ``None`` when it is alive or cannot be judged from
here: a run is never failed on evidence this process cannot see.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from ..jsonio import dumps
from .processes import is_alive, start_time

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
PID_NAMESPACE_FILE = "/proc/self/ns/pid"


@dataclass(frozen=True)
class RunnerIdentity:
    """Where a runner's pid means something: a boot of a kernel and a PID namespace in it."""

    boot_id: str | None
    pid_namespace: int | None

    def sees(self, other: RunnerIdentity) -> bool:
        """Whether a process here can look up a pid recorded by ``other`` (both known)."""
        return (
            self.boot_id is not None
            and self.boot_id == other.boot_id
            and self.pid_namespace is not None
            and self.pid_namespace == other.pid_namespace
        )


def _read_boot_id() -> str | None:
    try:
        with open(BOOT_ID_FILE, encoding="ascii") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _read_pid_namespace() -> int | None:
    try:
        return os.stat(PID_NAMESPACE_FILE).st_ino
    except OSError:
        return None


def current_identity() -> RunnerIdentity:
    """This process's boot id and PID namespace (``None`` for what it cannot read: no /proc)."""
    return RunnerIdentity(_read_boot_id(), _read_pid_namespace())


def record(pid: int) -> tuple[float | None, str]:
    """``(start time, identity JSON)`` to store for runner ``pid``, read by this process."""
    started = start_time(pid)
    here = current_identity()
    data = {
        "boot_id": here.boot_id,
        "pid_namespace": here.pid_namespace,
        "pid": pid,
        "started_at": started,
    }
    return started, dumps(data)


def parse(text: str | None) -> RunnerIdentity | None:
    """The identity stored as ``text``; ``None`` for a run recorded without one."""
    if not text:
        return None
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    boot = data.get("boot_id")
    namespace = data.get("pid_namespace")
    return RunnerIdentity(
        boot if isinstance(boot, str) else None,
        namespace if isinstance(namespace, int) else None,
    )


@dataclass(frozen=True)
class Runner:
    """A run's runner as recorded: pid, start time, host name and identity."""

    pid: int
    started_at: float | None
    host: str | None
    identity: RunnerIdentity | None


def verdict(runner: Runner, here: RunnerIdentity, host: str) -> str | None:
    """Why ``runner`` is gone, seen from a process with identity ``here`` on host ``host``;
    ``None`` when it is alive or when this process cannot tell (see the module docstring)."""
    gone = f"the runner process {runner.pid} on {runner.host} ended before the run finished"
    recorded = runner.identity
    if recorded is None or recorded.boot_id is None or here.boot_id is None:
        if runner.host != host:
            return None  # another machine's runner, or a container's we cannot tell from ours
        return None if is_alive(runner.pid, runner.started_at) else gone
    if recorded.boot_id != here.boot_id:
        return f"{gone}: the machine restarted since" if runner.host == host else None
    if not here.sees(recorded):
        return None  # the same machine, another PID namespace: its pids are not ours
    return None if is_alive(runner.pid, runner.started_at) else gone
