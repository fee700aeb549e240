"""How many kernels a run asks its pool to start ahead, and when.

A run knows how many steps will need a fresh kernel; asking for all of them at once starts the
kernels of later steps (a join after a fan-out) while the first ones still start, so they share
the CPU with them just when it is scarcest. ``KernelDemand`` asks first for the steps that can
start now, and for the rest once each of those has taken its kernel: a later step's kernel then
boots while the first steps run, and is ready when the step is. A step that starts before its
kernel was asked for (a first step ended at once) simply takes the next one the pool starts.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Kernels(Protocol):
    def want(self, n: int) -> None: ...


class KernelDemand:
    """A run's demand on its kernel pool: ``pending`` steps to run, ``now`` of them ready."""

    def __init__(self, kernels: Kernels, pending: int, now: int) -> None:
        self._kernels = kernels
        self._lock = threading.Lock()
        first = min(pending, now) if now > 0 else pending
        self._wanted = first  # asked of the pool, not yet taken by a step's thread
        self._later = pending - first  # not asked yet
        self._first = first  # kernels the first steps take before the rest are asked for
        self._closed = False
        if first:
            kernels.want(first)

    def launched(self) -> None:
        """A step's thread starts: its ``acquire()`` takes one off what was asked."""
        with self._lock:
            if self._wanted > 0:
                self._wanted -= 1
            elif self._later > 0:  # its kernel was not asked for yet: it asks by acquiring
                self._later -= 1

    def took(self) -> None:
        """A step took its kernel; once the first steps all have, ask for the rest."""
        with self._lock:
            self._first -= 1
            if self._closed or self._first > 0 or self._later == 0:
                return
            later, self._later = self._later, 0
            self._wanted += later
        self._kernels.want(later)

    def release(self) -> None:
        """The run is over: what was asked and not taken is not wanted any more."""
        with self._lock:
            wanted, self._wanted, self._later, self._closed = self._wanted, 0, 0, True
        if wanted:
            self._kernels.want(-wanted)
