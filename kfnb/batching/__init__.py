"""Notebooks in batch: parameter sweeps (``kfnb.batch``, ``kfnb batch``) and the ``kfnb``
papermill engine (``papermill --engine kfnb``).

The package is ``batching``, not ``batch``: ``kfnb.batch`` is the function. Kept light:
papermill imports ``kfnb.batching.engine`` (and so this package) while ``import papermill``
runs, so nothing here may import papermill, kernels or widgets at module level.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Batch", "batch"]


def __getattr__(name: str) -> Any:
    """``kfnb.batching.batch`` and ``Batch``, imported on first use."""
    if name in ("batch", "Batch"):
        from . import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module 'kfnb.batching' has no attribute {name!r}")
