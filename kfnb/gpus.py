"""The machine's GPUs, leased across processes: one lease for pipeline steps, training jobs and
tuning trials, so two of them never hold the same GPU unless asked to.

A GPU is held through an exclusive ``flock`` on its own lock file in ``KFNB_HOME/gpus/``. The
kernel drops such a lock when the last descriptor of the holder goes, so a holder that dies (even
by SIGKILL) frees its GPUs at once, with no stale state to clean up. The lock file also says who
holds it (pid, what, since when) for a "waiting for GPU 1, held by ..." message; that text is
advisory, the lock is the truth. ``flock`` treats every ``open`` on its own, so threads of one
process (two runs of a Jupyter server) exclude each other as separate processes do.

Nothing here initialises CUDA: GPU ids come from the caller (``resources.detect_gpus``: the
``gpus`` option, ``CUDA_VISIBLE_DEVICES``, ``nvidia-smi``), and the holder passes them on as
``CUDA_VISIBLE_DEVICES`` before its program starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GpuLease", "Held"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class Held:
    """GPUs one holder took; ``release()`` gives them back (also on garbage collection of the
    process: the kernel drops the locks with the descriptors)."""

    gpus: list[str]
    _fds: list[int] = field(default_factory=list, repr=False)

    def release(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # nobody holds it: the text goes before the lock
            os.close(fd)  # drops the lock

    @property
    def fds(self) -> list[int]:
        """The lock descriptors: a holder that hands its GPUs to a child process that outlives
        it passes these on (``pass_fds``), so the lease lasts as long as the child."""
        return list(self._fds)


class GpuLease:
    """Lock files for GPU ids under ``folder`` (``KFNB_HOME/gpus``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _path(self, gpu: str) -> Path:
        return self.folder / f"gpu-{_UNSAFE.sub('_', gpu)}.lock"

    def take(self, gpus: Sequence[str], count: int, holder: str) -> Held | None:
        """Take ``count`` of ``gpus`` (in that order of preference) if that many are free now;
        else take none and return None. ``holder`` says who holds them (shown to waiters)."""
        if count <= 0:
            return Held([])
        self.folder.mkdir(parents=True, exist_ok=True)
        held = Held([])
        note = json.dumps({"pid": os.getpid(), "holder": holder, "since": time.time()}).encode()
        for gpu in gpus:
            fd = os.open(self._path(gpu), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                held.release()
                raise
            os.ftruncate(fd, 0)
            os.pwrite(fd, note, 0)
            held.gpus.append(gpu)
            held._fds.append(fd)
            if len(held.gpus) == count:
                return held
        held.release()
        return None

    def holders(self, gpus: Sequence[str]) -> dict[str, str]:
        """``{gpu: who holds it}`` for those of ``gpus`` held now (by anyone, this process too)."""
        out: dict[str, str] = {}
        for gpu in gpus:
            path = self._path(gpu)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    out[gpu] = _describe(os.pread(fd, 4096, 0))
                else:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return out


def _describe(raw: bytes) -> str:
    try:
        note = json.loads(raw.decode())
        return f"{note['holder']} (pid {note['pid']})"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "another process"
