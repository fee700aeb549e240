"""What a step asks for on this machine, and the pool it is granted from.

A step's ``limit:`` tags become a ``Request``: CPUs (``cpu``), bytes of memory (``memory``) and
a number of GPUs (``nvidia.com/gpu``). The ``Pool`` holds what this machine offers: a number of
step slots (``max_parallel``), CPUs, memory and the ids of its GPUs. A step starts only when all
it asks for is free; it gets its GPUs as ``CUDA_VISIBLE_DEVICES``. A step that asks for more than
the whole pool could ever give fails when the run is submitted, not hours later.

Steps that declare no CPU or memory limit are not counted against those; ``max_parallel`` bounds
them. GPU ids come from ``KFNB_GPUS`` (e.g. ``0,1``; empty means none), else from a set
``CUDA_VISIBLE_DEVICES``, else from ``nvidia-smi``; the config may also give them. With a
``lease`` (``kfnb.gpus.GpuLease`` in ``KFNB_HOME``), a GPU is also taken from the machine-wide
lease, so runs of other processes (and training jobs) never get the same GPU at the same time;
a step whose GPUs are held elsewhere waits, and ``gpu_wait`` says for whom.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...dag import GPU, Step
from ...gpus import GpuLease, Held
from .. import BackendError

_SUFFIX = {
    "": 1,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "m": 1e-3,
}
_QTY = re.compile(r"^([0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def quantity(text: str) -> float:
    """A Kubernetes quantity as a number: ``500m`` -> 0.5, ``4Gi`` -> 4294967296."""
    m = _QTY.match(text.strip())
    if not m or m.group(2) not in _SUFFIX:
        raise BackendError(f"cannot read the quantity {text!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


@dataclass(frozen=True)
class Request:
    cpu: float = 0.0
    memory: float = 0.0
    gpus: int = 0

    @classmethod
    def of(cls, step: Step) -> Request:
        res = step.resources
        return cls(
            cpu=quantity(res["cpu"]) if "cpu" in res else 0.0,
            memory=quantity(res["memory"]) if "memory" in res else 0.0,
            gpus=int(res.get(GPU, "0")),
        )


def detect_gpus(env: Mapping[str, str]) -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` of ``env`` (the environment the
    settings were read from) when set, else what ``nvidia-smi`` lists. (``KFNB_GPUS`` is the
    local backend's ``gpus`` option.)"""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return float("inf")


@dataclass
class Grant:
    """What one running step holds."""

    request: Request
    gpus: list[str] = field(default_factory=list)
    held: Held | None = None  # the machine-wide lease of ``gpus``


class Pool:
    """The slots, CPUs, memory and GPUs of this machine, shared by the running steps."""

    def __init__(
        self,
        *,
        max_parallel: int,
        cpus: float,
        memory: float,
        gpus: list[str],
        lease: GpuLease | None = None,
    ) -> None:
        if max_parallel < 1:
            raise BackendError(f"max_parallel must be at least 1, not {max_parallel}")
        self.max_parallel = max_parallel
        self.cpus = cpus
        self.memory = memory
        self.gpus = list(gpus)
        self._lock = threading.Lock()
        self._slots = max_parallel
        self._free_cpu = cpus
        self._free_memory = memory
        self._free_gpus = list(gpus)
        self.lease = lease
        self._gpu_wait: dict[str, str] = {}

    def check(self, step: Step) -> None:
        """Raise ``BackendError`` if ``step`` can never run here."""
        r = Request.of(step)
        pool = ", ".join(self.gpus) or "none"
        if r.gpus > len(self.gpus):
            raise BackendError(
                f"step {step.name!r} asks for {r.gpus} GPU{'s' if r.gpus != 1 else ''}, but this "
                f"machine has {len(self.gpus)} (GPU ids: {pool})",
                fix="lower its limit:nvidia.com/gpu, set KFNB_GPUS to the ids to use, or run on "
                "Kubeflow (--backend kfp)",
            )
        if r.cpu > self.cpus:
            raise BackendError(
                f"step {step.name!r} asks for {r.cpu:g} CPUs, but this machine has {self.cpus:g}",
                fix="lower its limit:cpu",
            )
        if r.memory > self.memory:
            raise BackendError(
                f"step {step.name!r} asks for {r.memory / 2**30:.1f} GiB of memory, but this "
                f"machine has {self.memory / 2**30:.1f} GiB",
                fix="lower its limit:memory",
            )

    def acquire(self, step: Step, holder: str = "") -> Grant | None:
        """Take what ``step`` needs if it is all free now; else None. ``holder`` names the
        step to other processes waiting for its GPUs (``run R step S``)."""
        r = Request.of(step)
        with self._lock:
            if (
                self._slots < 1
                or r.cpu > self._free_cpu + 1e-9
                or r.memory > self._free_memory
                or r.gpus > len(self._free_gpus)
            ):
                return None
            held = None
            if r.gpus and self.lease is not None:
                held = self.lease.take(self._free_gpus, r.gpus, holder or f"step {step.name}")
                if held is None:
                    holders = self.lease.holders(self._free_gpus)
                    self._gpu_wait[step.name] = (
                        ", ".join(f"GPU {gpu} is held by {who}" for gpu, who in holders.items())
                        or "the GPUs were taken meanwhile"
                    )
                    return None
            self._gpu_wait.pop(step.name, None)
            self._slots -= 1
            self._free_cpu -= r.cpu
            self._free_memory -= r.memory
            gpus = held.gpus if held is not None else self._free_gpus[: r.gpus]
            self._free_gpus = [g for g in self._free_gpus if g not in gpus]
            return Grant(r, gpus, held)

    def gpu_wait(self, step: str) -> str | None:
        """Why ``step`` did not get its GPUs at its last try although this pool had them free:
        who holds them elsewhere (None: it did not wait for that)."""
        return self._gpu_wait.get(step)

    def release(self, grant: Grant) -> None:
        if grant.held is not None:
            grant.held.release()
            grant.held = None
        with self._lock:
            self._slots += 1
            self._free_cpu += grant.request.cpu
            self._free_memory += grant.request.memory
            self._free_gpus = sorted(self._free_gpus + grant.gpus, key=lambda g: self.gpus.index(g))
