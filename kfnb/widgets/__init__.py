"""Notebook widgets for kfnb (ipywidgets 8, no custom JavaScript).

- ``RunWidget``: one run, live (DAG, progress, step logs, metrics), with a static snapshot;
- ``RunsTable``: recent runs side by side, sortable, a metric plotted across runs;
- ``Launcher``: a form for a notebook's parameters and a Run button;
- ``TrainLauncher``: a form for a training function's arguments, backend, nodes, processes,
  GPUs and image, and a Train button;
- ``StudyWidget``: a tuning study, live (trials table, best so far, history and parallel
  coordinates plots, Stop, add trials, run the best), with a static snapshot;
- ``BatchWidget``: a parameter sweep, live (sets done/running/failed, the results table
  filling in, Cancel), with a static snapshot;
- ``TuneLauncher``: a search-space editor for a notebook's parameters or a function's
  arguments, the objective and the search settings, and a Start button.

The widgets are imported on first use; the pure-Python parts (``dag``, ``plot``, ``snapshot``,
``follow``) need no ipywidgets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batch import BatchWidget
    from .launcher import Launcher
    from .run import RunWidget
    from .study import StudyWidget
    from .table import RunsTable
    from .train_launcher import TrainLauncher
    from .tune_launcher import TuneLauncher

__all__ = [
    "BatchWidget",
    "Launcher",
    "RunWidget",
    "RunsTable",
    "StudyWidget",
    "TrainLauncher",
    "TuneLauncher",
]

_LAZY = {
    "BatchWidget": "batch",
    "Launcher": "launcher",
    "RunWidget": "run",
    "RunsTable": "table",
    "StudyWidget": "study",
    "TrainLauncher": "train_launcher",
    "TuneLauncher": "tune_launcher",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'kfnb.widgets' has no attribute {name!r}")
