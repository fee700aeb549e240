"""Helpers of the integration tests: waiting, and finding the processes a run or pool started."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def state(pid: int) -> str | None:
    """The process's state letter (``Z``: zombie), or None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie is dead: only its parent's bookkeeping is left)."""
    return state(pid) not in (None, "Z")


def processes_of(mark: str, but: int | None = None) -> list[int]:
    """Live processes whose environment carries ``KFNB_TEST_MARK=mark`` (all but pid ``but``)."""
    found = []
    needle = f"KFNB_TEST_MARK={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == but:
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found
