"""The run store: what ran, how it went, and what it measured.

Every run kfnb starts (a pipeline, a training job, a tuning experiment and its trials) is
recorded in one store that the CLI, notebook kernels and the Jupyter server all open: SQLite in
``KFNB_HOME`` (default ``~/.kfnb``) plus an artifacts folder per run.

- ``models``: ``Run``, ``StepRun``, ``Metric``, ``Event`` and the status machine;
- ``store``: ``Store``, the one object that reads and writes runs;
- ``db`` and ``schema``: SQLite connections shared by threads and processes, and migrations;
- ``context``: ``log_metric``/``log_param`` for code running inside a step;
- ``ids``, ``values``, ``processes``: run ids, value conversion, runner liveness.
"""

from __future__ import annotations

from .context import current_run, log_metric, log_param
from .errors import (
    AmbiguousRunId,
    InvalidTransition,
    MetricValueError,
    RunNotFound,
    StepNotFound,
    StoreError,
    TrackingError,
)
from .models import (
    TERMINAL_RUN,
    TERMINAL_STEP,
    Event,
    Metric,
    Run,
    RunStatus,
    StepRun,
    StepStatus,
)
from .store import Store, default_home

__all__ = [
    "TERMINAL_RUN",
    "TERMINAL_STEP",
    "AmbiguousRunId",
    "Event",
    "InvalidTransition",
    "Metric",
    "MetricValueError",
    "Run",
    "RunNotFound",
    "RunStatus",
    "StepNotFound",
    "StepRun",
    "StepStatus",
    "Store",
    "StoreError",
    "TrackingError",
    "current_run",
    "default_home",
    "log_metric",
    "log_param",
]
