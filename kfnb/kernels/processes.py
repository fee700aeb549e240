"""Process trees of kernels: what to kill so that nothing outlives a step."""

from __future__ import annotations

from typing import Any


def descendants(pid: int) -> list[Any]:
    """Every process below ``pid`` (``psutil.Process`` objects); empty if it is gone."""
    try:
        import psutil

        return list(psutil.Process(pid).children(recursive=True))
    except Exception:  # psutil missing, or the process is gone
        return []
