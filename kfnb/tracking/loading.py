"""Reading runs: store rows into ``Run`` and ``StepRun`` snapshots, a page at a time.

``load_rows`` turns a page of ``runs`` rows into ``Run``s with a fixed number of queries,
whatever the page size: one each for the page's steps, parameters, latest metric values and
child counts (ids go ``IN (...)`` in chunks well under SQLite's limit on query variables).
Everything runs in the caller's read (or write) transaction, so a run and its steps come from
one snapshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import RunNotFound
from .models import Run, StepRun
from .values import from_json

_CHUNK = 500  # ids per ``IN (...)``


def by_run(conn: sqlite3.Connection, sql: str, ids: Sequence[str]) -> Iterator[sqlite3.Row]:
    """Rows of ``sql`` (with ``{}`` where the id list goes) for ``ids``, in chunks."""
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        yield from conn.execute(sql.format(", ".join("?" * len(chunk))), chunk)


def step_from_row(r: sqlite3.Row) -> StepRun:
    return StepRun(
        run_id=r["run_id"],
        name=r["name"],
        status=r["status"],
        attempt=r["attempt"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        output_notebook=r["output_notebook"],
        log=r["log"],
        error=from_json(r["error"]),
        gpus=from_json(r["gpus"]) or [],
        hash=r["hash"],
        cached_from=r["cached_from"],
    )


def load(conn: sqlite3.Connection, rid: str, runs_dir: Path) -> Run:
    """The run with the full id ``rid``."""
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (rid,)).fetchone()
    if row is None:
        raise RunNotFound(rid)
    return load_rows(conn, [row], runs_dir)[0]


def load_rows(conn: sqlite3.Connection, rows: Sequence[sqlite3.Row], runs_dir: Path) -> list[Run]:
    """``Run``s for ``runs`` rows, in their order (``runs_dir``: where artifacts folders are)."""
    ids = [r["id"] for r in rows]
    steps: dict[str, list[StepRun]] = {i: [] for i in ids}
    params: dict[str, dict[str, Any]] = {i: {} for i in ids}
    metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
    children: dict[str, int] = {}
    for r in by_run(
        conn, "SELECT * FROM steps WHERE run_id IN ({}) ORDER BY run_id, position", ids
    ):
        steps[r["run_id"]].append(step_from_row(r))
    for r in by_run(
        conn, "SELECT run_id, name, value FROM params WHERE run_id IN ({}) ORDER BY rowid", ids
    ):
        params[r["run_id"]][r["name"]] = from_json(r["value"])
    # the latest value per name: SQLite takes the bare columns from the row with max(id)
    for r in by_run(
        conn,
        "SELECT run_id, name, value, max(id) FROM metrics "
        "WHERE run_id IN ({}) GROUP BY run_id, name",
        ids,
    ):
        value = r["value"]
        metrics[r["run_id"]][r["name"]] = float("nan") if value is None else value
    for r in by_run(
        conn,
        "SELECT parent_id, count(*) AS n FROM runs WHERE parent_id IN ({}) GROUP BY parent_id",
        ids,
    ):
        children[r["parent_id"]] = int(r["n"])
    return [
        _run(r, runs_dir, steps[r["id"]], params[r["id"]], metrics[r["id"]], children) for r in rows
    ]


def _run(
    r: sqlite3.Row,
    runs_dir: Path,
    steps: list[StepRun],
    params: dict[str, Any],
    metrics: dict[str, float],
    children: dict[str, int],
) -> Run:
    return Run(
        id=r["id"],
        kind=r["kind"],
        name=r["name"],
        status=r["status"],
        backend=r["backend"],
        notebook=r["notebook"],
        notebook_hash=r["notebook_hash"],
        params=params,
        created_at=r["created_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        error=r["error"],
        parent_id=r["parent_id"],
        runner_pid=r["runner_pid"],
        runner_host=r["runner_host"],
        artifacts_dir=str(runs_dir / r["id"]),
        steps=steps,
        metrics=metrics,
        remote=None if r["remote"] is None else from_json(r["remote"]),
        spec=None if r["spec"] is None else from_json(r["spec"]),
        child_count=children.get(r["id"], 0),
    )
