"""Is a run's runner process still alive? What ``Store.recover`` asks of each unfinished run.

A pid alone is weak evidence: after the runner dies the operating system may hand its pid to
another process. When psutil is installed (ipykernel depends on it, so it usually is) the store
also records the runner's start time, and a live pid whose process started at another time
counts as dead; a zombie counts as dead too. Without psutil only ``os.kill(pid, 0)`` decides.
"""

from __future__ import annotations

import os
from typing import Any

_START_TOLERANCE_S = 1.0


def _psutil() -> Any:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with ipykernel
        return None
    return psutil


def start_time(pid: int) -> float | None:
    """When process ``pid`` started (unix time), or ``None`` if unknown."""
    psutil = _psutil()
    if psutil is None:
        return None
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def is_alive(pid: int, started_at: float | None = None) -> bool:
    """Whether the process ``pid`` runs (and, if ``started_at`` is known, is the same process)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    except OSError:
        return False
    psutil = _psutil()
    if psutil is None:
        return True
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = float(proc.create_time())
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, OSError):
        return True
    return started_at is None or abs(created - started_at) <= _START_TOLERANCE_S
