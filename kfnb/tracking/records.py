"""What runs record besides their status: metrics, parameters, artifacts and events.

- a **metric** is a curve: every ``log_metric`` call adds a value (NULL in SQLite is NaN, the one
  float SQLite cannot store), with an optional ``step`` (its x) and ``source`` (the step that
  logged it); a run shows the latest value of each;
- a **parameter** is one JSON value per name, replaced when logged again;
- an **artifact** is a file a run produced, by name (and step);
- an **event** is something that happened to a run (``"run"`` and ``"step"`` status changes, which
  ``append_event`` writes inside their transaction, or ``"retry"``, ``"warning"``...). Event ids
  only grow, so a live UI polls with the last id it saw.

Every value stored as JSON goes through ``values.to_json`` (``kfnb.jsonio``: no NaN).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .db import Database
from .ids import resolve
from .models import Event, Metric
from .values import check_names, from_json, metric_value, step_index, to_json


def append_event(
    conn: sqlite3.Connection, rid: str, kind: str, data: Mapping[str, Any], now: float
) -> None:
    """Append an event to run ``rid`` inside the caller's transaction."""
    conn.execute(
        "INSERT INTO events (run_id, time, kind, data) VALUES (?, ?, ?, ?)",
        (rid, now, kind, to_json(dict(data))),
    )


def insert_params(conn: sqlite3.Connection, rid: str, params: Mapping[str, Any]) -> None:
    """Record (or replace) parameters of run ``rid`` inside the caller's transaction."""
    conn.executemany(
        "INSERT INTO params (run_id, name, value) VALUES (?, ?, ?) "
        "ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value",
        [(rid, k, to_json(v)) for k, v in params.items()],
    )


def _event(row: sqlite3.Row) -> Event:
    return Event(row["id"], row["run_id"], row["time"], row["kind"], from_json(row["data"]))


class Records:
    """Metrics, parameters, artifacts and events of the runs in ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- metrics and parameters ---------------------------------------------------------------
    def log_metric(
        self,
        run_id: str,
        name: str,
        value: float,
        *,
        step: int | None = None,
        source: str | None = None,
    ) -> None:
        number = metric_value(name, value)
        index = step_index(step)
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO metrics (run_id, name, value, step, source, timestamp) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (resolve(conn, run_id), name, number, index, source, time.time()),
            )

    def log_param(self, run_id: str, name: str, value: Any) -> None:
        check_names([name], "parameter")
        with self._db.write() as conn:
            insert_params(conn, resolve(conn, run_id), {name: value})

    def metrics(self, run_id: str, name: str | None = None) -> list[Metric]:
        with self._db.read() as conn:
            sql = "SELECT * FROM metrics WHERE run_id = ?"
            args: tuple[Any, ...] = (resolve(conn, run_id),)
            if name is not None:
                sql += " AND name = ?"
                args += (name,)
            rows = conn.execute(sql + " ORDER BY timestamp, id", args).fetchall()
        return [
            Metric(
                r["name"],
                float("nan") if r["value"] is None else r["value"],
                r["step"],
                r["source"],
                r["timestamp"],
            )
            for r in rows
        ]

    # -- artifacts ----------------------------------------------------------------------------
    def add_artifact(
        self, run_id: str, name: str, path: str | Path, *, step: str | None = None
    ) -> None:
        check_names([name], "artifact")
        where = str(Path(path).expanduser().absolute())
        with self._db.write() as conn:
            rid = resolve(conn, run_id)
            conn.execute(
                "DELETE FROM artifacts WHERE run_id = ? AND name = ? AND step IS ?",
                (rid, name, step),
            )
            conn.execute(
                "INSERT INTO artifacts (run_id, name, path, step, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (rid, name, where, step, time.time()),
            )

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT name, path, step, created_at FROM artifacts WHERE run_id = ? ORDER BY id",
                (resolve(conn, run_id),),
            ).fetchall()
        return [dict(r) for r in rows]

    # -- events -------------------------------------------------------------------------------
    def event(self, run_id: str, kind: str, data: Mapping[str, Any]) -> None:
        check_names([kind], "event kind")
        with self._db.write() as conn:
            append_event(conn, resolve(conn, run_id), kind, data, time.time())

    def events(self, run_id: str, *, after: int = 0, limit: int | None = None) -> list[Event]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
                (resolve(conn, run_id), after, limit if limit else -1),
            ).fetchall()
        return [_event(r) for r in rows]

    def all_events(self, *, after: int = 0, limit: int | None = None) -> list[Event]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit if limit else -1),
            ).fetchall()
        return [_event(r) for r in rows]

    def last_event_id(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])
