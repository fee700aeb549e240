"""Recording from inside a step: ``log_metric`` and ``log_param`` for the run being executed.

kfnb's runners start each step's kernel with ``KFNB_HOME`` (the store), ``KFNB_RUN_ID`` (the
run) and ``KFNB_STEP`` (the step, recorded as a metric's ``source``). Global state is read here,
at the entry point, and passed to the store explicitly.

Outside a run the functions record nothing and warn once per process, so a notebook that logs
metrics still runs interactively. Their arguments are checked either way: a metric that is not
a number fails in Jupyter just as it would in the pipeline. With ``KFNB_METRICS_STDOUT=1`` (a
Katib trial) ``log_metric`` also prints ``name=value`` lines for Katib's StdOut collector. With
``KFNB_METRICS_FILE`` set (a step running in a Kubeflow Pipelines pod, where no store exists) both
append JSON lines to that file, which the step's runner turns into its KFP metrics artifact.

In a training job (``KFNB_TRAIN_DIR`` set locally, ``KFNB_METRIC_LINES`` in a cluster job's
pods) every rank runs the same code, so only rank 0 records (``RANK``), unless
``KFNB_METRICS_ALL_RANKS=1``; each metric's source is its rank. With ``KFNB_METRIC_LINES=1``
(a pod, where no store exists) ``log_metric`` prints ``KFNB_METRIC {json}`` lines, which the
job's follower reads from the pod's log into the store.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from ..jsonio import dumps
from .store import Store, default_home
from .values import metric_value

RUN_ENV = "KFNB_RUN_ID"
STEP_ENV = "KFNB_STEP"
STDOUT_ENV = "KFNB_METRICS_STDOUT"
METRICS_FILE_ENV = "KFNB_METRICS_FILE"
METRIC_LINES_ENV = "KFNB_METRIC_LINES"
METRIC_LINE_PREFIX = "KFNB_METRIC "
_TRUE = {"1", "true", "yes", "on"}


class NotInRunWarning(UserWarning):
    """``log_metric``/``log_param`` was called outside a kfnb run: nothing was recorded."""


_stores: dict[Path, Store] = {}
_lock = threading.Lock()
_warned = False


def current_run() -> tuple[Store, str, str | None] | None:
    """``(store, run_id, step)`` of the run this process works for, or ``None`` outside one."""
    run_id = os.environ.get(RUN_ENV, "").strip()
    if not run_id:
        return None
    home = default_home()
    with _lock:
        store = _stores.get(home)
        if store is None:
            store = _stores[home] = Store(home)
    return store, run_id, os.environ.get(STEP_ENV, "").strip() or None


def _warn_once(function: str) -> None:
    global _warned
    with _lock:
        if _warned:
            return
        _warned = True
    warnings.warn(
        f"kfnb.{function}: not inside a kfnb run, nothing recorded", NotInRunWarning, stacklevel=3
    )


def log_metric(name: str, value: Any, step: int | None = None) -> None:
    """Record a value of metric ``name`` for the current run (``step``: its x, e.g. the epoch)."""
    number = metric_value(name, value)
    if _quiet_rank():
        return
    printed = os.environ.get(STDOUT_ENV, "").strip().lower() in _TRUE
    if printed:
        print(f"{name}={number!r}", file=sys.stdout, flush=True)
    if os.environ.get(METRIC_LINES_ENV, "").strip().lower() in _TRUE:
        line = dumps({"name": name, "value": number, "step": step})
        print(f"{METRIC_LINE_PREFIX}{line}", file=sys.stdout, flush=True)
        printed = True
    filed = _append({"metric": name, "value": number, "step": step})
    run = current_run()
    if run is None:
        if not (printed or filed):
            _warn_once("log_metric")
        return
    store, run_id, source = run
    store.log_metric(run_id, name, number, step=step, source=source)


def _quiet_rank() -> bool:
    """A training rank other than 0, and not every rank records."""
    env = os.environ
    in_job = env.get("KFNB_TRAIN_DIR") or env.get(METRIC_LINES_ENV)
    if not in_job or env.get("RANK", "0").strip() in ("", "0"):
        return False
    return env.get("KFNB_METRICS_ALL_RANKS", "").strip().lower() not in _TRUE


def log_param(name: str, value: Any) -> None:
    """Record parameter ``name`` of the current run (JSON; ``repr`` for what JSON cannot hold)."""
    if _quiet_rank():
        return
    filed = _append({"param": name, "value": value})
    run = current_run()
    if run is None:
        if not filed:
            _warn_once("log_param")
        return
    store, run_id, _ = run
    store.log_param(run_id, name, value)


def _append(record: dict[str, Any]) -> bool:
    """Append ``record`` to ``$KFNB_METRICS_FILE`` if set; whether it was."""
    path = os.environ.get(METRICS_FILE_ENV, "").strip()
    if not path:
        return False
    line = dumps(record)  # standard JSON: a NaN metric is written as null
    with _lock, open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    return True
