"""kfnb: notebook-first Kubeflow.

Tag notebook cells as pipeline steps (Kale-compatible tags or ``%%step`` magics) and run the
notebook as a DAG, locally or on Kubeflow Pipelines.
"""

from __future__ import annotations

import os as _os
from typing import Any

# In a source checkout (editable install) the server extension lives in the top-level
# ``server_ext/`` folder; a wheel ships it as ``kfnb/server_ext``. Make both import as
# ``kfnb.server_ext``.
if not _os.path.isdir(_os.path.join(__path__[0], "server_ext")):  # pragma: no cover
    __path__.append(_os.path.dirname(__path__[0]))

try:
    from ._version import __version__
except ImportError:  # pragma: no cover - running from a tree that was never built
    __version__ = "0.0.0+unknown"

from .dag import Param, Pipeline, Step
from .errors import KfnbError

__all__ = [
    "Choice",
    "Float",
    "Int",
    "KfnbError",
    "Median",
    "Param",
    "Pipeline",
    "Step",
    "__version__",
    "batch",
    "compile",
    "get_run",
    "log_metric",
    "log_param",
    "run",
    "runs",
    "train",
    "tune",
    "warm",
]

_LAZY = {
    "run": "api",
    "get_run": "api",
    "compile": "api",
    "runs": "api",
    "log_metric": "tracking",
    "log_param": "tracking",
    "warm": "api",
    "train": "training",
    "tune": "tuning",
    "batch": "batching.sweep",
    "Float": "tuning",
    "Int": "tuning",
    "Choice": "tuning",
    "Median": "tuning",
}


def __getattr__(name: str) -> Any:
    """``kfnb.run`` and friends, imported on first use so ``import kfnb`` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'kfnb' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext kfnb``: register the ``%%step`` cell magic and the ``%kfnb`` line magic."""
    from .magics import load_ipython_extension as load

    load(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "kfnb"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "kfnb.server_ext"}]
