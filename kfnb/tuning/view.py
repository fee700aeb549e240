"""A study as every surface shows it: ``study_view(store, id)``, read from the run store alone.

One rule for the CLI (``kfnb show STUDY``), the widget, REST (``GET studies/{id}``) and the
panel: the study's settings (its ``StudySpec``), one row per trial (number, state incl. PRUNED,
parameters, objective value, intermediate values, duration, the run it ran), the counts per
state and the best trial so far. Local and Katib studies are recorded alike, so they show alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from ..jsonio import jsonable
from ..tracking import Run, Store
from ..tracking.errors import TrackingError

STATES = ("PENDING", "RUNNING", "SUCCEEDED", "PRUNED", "FAILED", "CANCELED")


def study_settings(record: Run) -> dict[str, Any]:
    """The study's ``StudySpec`` as stored with its run (``{}`` for a run that is no study)."""
    found = (record.spec or {}).get("study")
    return dict(found) if isinstance(found, Mapping) else {}


def trial_row(store: Store, trial: Run, objective: str, now: float | None = None) -> dict[str, Any]:
    """One trial as a row of the study's table."""
    info = (trial.spec or {}).get("trial") or {}
    curve = [
        [m.step, m.value]
        for m in store.metrics(trial.id, objective)
        if m.step is not None and math.isfinite(m.value)
    ]
    value = trial.metrics.get(objective) if trial.status == "SUCCEEDED" else None
    if value is not None and not math.isfinite(value):
        value = None
    start = trial.started_at
    end = trial.finished_at or (None if start is None else (now or time.time()))
    children = store.children(trial.id)
    return {
        "id": trial.id,
        "number": info.get("number"),
        "name": trial.name,
        "status": trial.status,
        "params": dict(trial.params),
        "value": value,
        "intermediate": curve,
        "started_at": start,
        "finished_at": trial.finished_at,
        "duration": None if start is None or end is None else max(0.0, end - start),
        "error": trial.error,
        "run": children[-1].id if children else None,
        "remote": trial.remote,
    }


def best_of(rows: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    """The succeeded trial with the best value (the earliest of equals)."""
    scored = [r for r in rows if r["status"] == "SUCCEEDED" and r["value"] is not None]
    if not scored:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(scored, key=lambda r: (sign * r["value"], r["number"] or 0))


def study_view(store: Store, run_id: str) -> dict[str, Any]:
    """The study ``run_id`` with its trials, counts and best trial (``TrackingError`` for a run
    that is not a study)."""
    record = store.get_run(run_id)
    if record.kind != "tune":
        raise TrackingError(
            f"run {record.id} is a {record.kind} run, not a study",
            fix="pass the id of a tune run (kfnb runs --kind tune)",
        )
    settings = study_settings(record)
    objective = str(settings.get("objective", ""))
    direction = str(settings.get("direction", "minimize"))
    now = time.time()
    rows = [
        trial_row(store, t, objective, now) for t in store.children(record.id) if t.kind == "trial"
    ]
    rows.sort(key=lambda r: (r["number"] is None, r["number"] or 0, r["id"]))
    counts = {state: 0 for state in STATES}
    for row in rows:
        counts[row["status"] if row["status"] in counts else "RUNNING"] += 1
    best = best_of(rows, direction)
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
            "remote": record.remote,
            "study": settings,
            "counts": counts,
            "best": best,
            "trials": rows,
        }
    )


def best_so_far(rows: list[dict[str, Any]], direction: str) -> list[list[float]]:
    """``[trial number, best value up to it]`` for the optimisation history."""
    out: list[list[float]] = []
    best: float | None = None
    for row in sorted(rows, key=lambda r: r["number"] or 0):
        value = row["value"] if row["status"] == "SUCCEEDED" else None
        if value is None:
            continue
        if best is None or (value > best if direction == "maximize" else value < best):
            best = value
        out.append([row["number"] or 0, best])
    return out
