"""The run store: what ran, how it went, and what it measured.

Every run kfnb starts (a pipeline, a training job, a tuning experiment and its trials) is
recorded in one store that the CLI, notebook kernels and the Jupyter server all open: SQLite in
``KFNB_HOME`` (default ``~/.kfnb``) plus an artifacts folder per run.

- ``models``: ``Run``, ``RunTree``, ``StepRun``, ``Metric``, ``Event``, run kinds and the
  status machine;
- ``store``: ``Store``, the one object that reads and writes runs, a facade over ``runs``
  (creation, transitions, lists, the run tree), ``steps``, ``records`` (metrics, parameters,
  artifacts, events), ``loading`` (rows -> models) and ``recovery`` (runs whose runner died);
- ``db`` and ``schema``: SQLite connections shared by threads and processes, their errors, and
  migrations;
- ``context``: ``log_metric``/``log_param`` for code running inside a step;
- ``ids``, ``values``: run ids and prefixes, value conversion;
- ``liveness``, ``processes``: whether a runner is gone, and when this process can tell.
"""

from __future__ import annotations

from .context import current_run, log_metric, log_param
from .errors import (
    AmbiguousRunId,
    InvalidParent,
    InvalidTransition,
    MetricValueError,
    RunNotFound,
    StepNotFound,
    StoreCorrupt,
    StoreDiskFull,
    StoreError,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
    TrackingError,
    UnknownRunKind,
)
from .models import (
    CHILD_KINDS,
    RESUMABLE_KINDS,
    RUN_KINDS,
    TERMINAL_RUN,
    TERMINAL_STEP,
    Event,
    Metric,
    Run,
    RunKind,
    RunStatus,
    RunTree,
    StepRun,
    StepStatus,
)
from .store import Store, default_home

__all__ = [
    "CHILD_KINDS",
    "RESUMABLE_KINDS",
    "RUN_KINDS",
    "TERMINAL_RUN",
    "TERMINAL_STEP",
    "AmbiguousRunId",
    "Event",
    "InvalidParent",
    "InvalidTransition",
    "Metric",
    "MetricValueError",
    "Run",
    "RunKind",
    "RunNotFound",
    "RunStatus",
    "RunTree",
    "StepNotFound",
    "StepRun",
    "StepStatus",
    "Store",
    "StoreCorrupt",
    "StoreDiskFull",
    "StoreError",
    "StoreLocked",
    "StoreReadOnly",
    "StoreUnavailable",
    "TrackingError",
    "UnknownRunKind",
    "current_run",
    "default_home",
    "log_metric",
    "log_param",
]
