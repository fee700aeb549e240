"""A local run's files and the disk space it holds back.

``RunPaths`` names the folders of a run's artifacts (``KFNB_HOME/runs/<id>/``): the step
notebooks, the executed notebooks, the step logs, the values that flow between steps (``data``)
and a private ``.work`` folder. ``Reserve`` is a small file in ``.work`` that the scheduler gives
up when the disk fills, so that the run's end can still be recorded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

RESERVE_BYTES = 256 * 1024  # disk space held back to record a run's end on a full disk


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


class Reserve:
    """A file of ``size`` bytes allocated next to a run's files while it runs, given up when the
    disk fills, so that the store (usually on the same disk) can still record how the run
    ended. Best effort: where it cannot be allocated, there is none."""

    def __init__(self, path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = path
        self.size = size
        self.held = False

    def hold(self) -> None:
        try:
            with open(self.path, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, self.size)
            self.held = True
        except OSError:
            self.release()

    def release(self) -> bool:
        """Give the space back; whether there was any to give."""
        held, self.held = self.held, False
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        return held

    def disk_full(self) -> bool:
        """Whether less than the reserve's size is left free on its disk."""
        try:
            return shutil.disk_usage(self.path.parent).free < self.size
        except OSError:
            return False
