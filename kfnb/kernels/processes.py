"""Process trees of kernels: what to kill so that nothing outlives a step."""

from __future__ import annotations

import os
from typing import Any


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process; a zombie (dead, not yet reaped) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:  # gone meanwhile
        return False
    except (OSError, IndexError):  # no /proc here: kill(0) said it exists
        return True


def descendants(pid: int) -> list[Any]:
    """Every process below ``pid`` (``psutil.Process`` objects); empty if it is gone."""
    try:
        import psutil

        return list(psutil.Process(pid).children(recursive=True))
    except Exception:  # psutil missing, or the process is gone
        return []
