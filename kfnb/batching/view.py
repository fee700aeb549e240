"""A sweep as every surface shows it: ``batch_view(store, id)``, read from the run store
alone: its settings, one row per set (parameters, status, metrics, the run that counts, how
many runs it took, the folder of its executed notebooks) and the counts per state."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..jsonio import jsonable
from ..tracking import Store
from ..tracking.errors import TrackingError
from .runner import runs_of, set_error

STATES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED")


def batch_view(store: Store, run_id: str) -> dict[str, Any]:
    """The batch ``run_id`` with its sets and counts (``TrackingError`` for another kind)."""
    record = store.get_run(run_id)
    if record.kind != "batch":
        raise TrackingError(
            f"run {record.id} is a {record.kind} run, not a batch",
            fix="pass the id of a batch run (kfnb runs --kind batch)",
        )
    settings = dict((record.spec or {}).get("batch") or {})
    sets = list(settings.pop("sets", None) or [])
    runs = runs_of(record)
    settings.pop("runs", None)
    now = time.time()
    rows = []
    for index, values in enumerate(sets):
        ids = runs.get(index) or []
        row: dict[str, Any] = {
            "set": index,
            "params": dict(values),
            "status": "PENDING",
            "metrics": {},
            "run": ids[-1] if ids else None,
            "runs": len(ids),
            "notebooks": None,
            "duration": None,
            "error": None,
        }
        if ids:
            child = store.get_run(ids[-1])
            status = child.status
            if status not in STATES:
                status = "RUNNING"
            start, end = child.started_at, child.finished_at or now
            row.update(
                status=status,
                metrics=dict(child.metrics),
                notebooks=str(Path(child.artifacts_dir) / "executed"),
                duration=None if start is None else max(0.0, end - start),
                error=set_error(child) if child.status == "FAILED" else None,
            )
        rows.append(row)
    counts = {state: 0 for state in STATES}
    for row in rows:
        counts[row["status"]] += 1
    return jsonable(
        {
            "id": record.id,
            "name": record.name,
            "status": record.status,
            "backend": record.backend,
            "notebook": record.notebook,
            "error": record.error,
            "created_at": record.created_at,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "batch": settings,
            "counts": counts,
            "sets": rows,
        }
    )


def param_names(view: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for row in view.get("sets") or []:
        names += [n for n in row["params"] if n not in names]
    return names


def metric_names(view: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for row in view.get("sets") or []:
        names += [n for n in row["metrics"] if n not in names]
    return names
