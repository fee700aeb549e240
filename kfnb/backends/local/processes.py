"""Process trees of steps: what to kill so that nothing outlives a step."""

from __future__ import annotations

from typing import Any


def descendants(pid: int) -> list[Any]:
    """Every process below ``pid`` (``psutil.Process`` objects).

    A step's kernel runs in a session of its own (jupyter_client starts kernels so), so killing
    the worker's process group alone would not reach it.
    """
    try:
        import psutil

        return list(psutil.Process(pid).children(recursive=True))
    except Exception:  # psutil missing, or the process is gone
        return []
