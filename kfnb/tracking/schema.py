"""The store's tables and their migrations.

The schema version lives in SQLite's ``PRAGMA user_version``. ``MIGRATIONS`` is the ordered list
of changes; migration *n* takes a database from version *n - 1* to *n*. Opening a store applies
the missing ones in one ``BEGIN IMMEDIATE`` transaction (so two processes opening an old store at
once migrate it once), and a store written by a newer kfnb is refused rather than misread.
A migration that has shipped is never edited: change the schema by appending one.

Tables (JSON values are TEXT)::

    runs      id PK, kind, name, status, backend, notebook, notebook_hash, created_at,
              started_at, finished_at, error, parent_id, runner_pid, runner_host,
              cancel_requested_at (v2), runner_started_at (v2), remote JSON (v4: where a
              run submitted elsewhere lives, e.g. its KFP run id, UI link, host, namespace),
              spec JSON (v5: what the run ran, e.g. its pipeline with edges), runner_identity
              JSON (v5: the runner's boot id and pid namespace, for liveness checks)
    steps     (run_id, name) PK, position, status, attempt, started_at, finished_at,
              output_notebook, log, error JSON, gpus JSON, hash, cached_from (``run/step``)
    params    (run_id, name) PK, value JSON
    metrics   id, run_id, name, value (NULL is NaN: SQLite stores NaN as NULL), step, source,
              timestamp
    artifacts id, run_id, name, path, step, created_at
    events    id AUTOINCREMENT, run_id, time, kind, data JSON
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .errors import StoreError


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    statements: tuple[str, ...]


_RUN_FK = "run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, steps, params, metrics, artifacts, events",
        (
            """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            backend TEXT NOT NULL,
            notebook TEXT,
            notebook_hash TEXT,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            error TEXT,
            parent_id TEXT REFERENCES runs(id) ON DELETE SET NULL,
            runner_pid INTEGER,
            runner_host TEXT
        )""",
            f"""CREATE TABLE steps (
            {_RUN_FK},
            name TEXT NOT NULL,
            position INTEGER NOT NULL,
            status TEXT NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 0,
            started_at REAL,
            finished_at REAL,
            output_notebook TEXT,
            log TEXT,
            error TEXT,
            gpus TEXT NOT NULL DEFAULT '[]',
            hash TEXT,
            PRIMARY KEY (run_id, name)
        )""",
            f"""CREATE TABLE params (
            {_RUN_FK},
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (run_id, name)
        )""",
            f"""CREATE TABLE metrics (
            id INTEGER PRIMARY KEY,
            {_RUN_FK},
            name TEXT NOT NULL,
            value REAL,
            step INTEGER,
            source TEXT,
            timestamp REAL NOT NULL
        )""",
            "CREATE INDEX metrics_by_run ON metrics (run_id, name, id)",
            f"""CREATE TABLE artifacts (
            id INTEGER PRIMARY KEY,
            {_RUN_FK},
            name TEXT NOT NULL,
            path TEXT NOT NULL,
            step TEXT,
            created_at REAL NOT NULL
        )""",
            "CREATE INDEX artifacts_by_run ON artifacts (run_id, id)",
            f"""CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            {_RUN_FK},
            time REAL NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL
        )""",
            "CREATE INDEX events_by_run ON events (run_id, id)",
        ),
    ),
    Migration(
        2,
        "cancel requests, runner start time (pid reuse), indexes for run lists",
        (
            "ALTER TABLE runs ADD COLUMN cancel_requested_at REAL",
            "ALTER TABLE runs ADD COLUMN runner_started_at REAL",
            "CREATE INDEX runs_by_kind ON runs (kind, id)",
            "CREATE INDEX runs_by_parent ON runs (parent_id, id)",
            "CREATE INDEX runs_by_status ON runs (status)",
        ),
    ),
    Migration(
        3,
        "step cache: where a cached step's results came from, steps by content hash",
        (
            "ALTER TABLE steps ADD COLUMN cached_from TEXT",
            "CREATE INDEX steps_by_hash ON steps (hash, status)",
        ),
    ),
    Migration(
        4,
        "remote runs: the id, link and endpoint of a run submitted to a cluster",
        ("ALTER TABLE runs ADD COLUMN remote TEXT",),
    ),
    Migration(
        5,
        "run model: the spec a run ran; the runner's identity (boot, pid namespace)",
        (
            "ALTER TABLE runs ADD COLUMN spec TEXT",
            "ALTER TABLE runs ADD COLUMN runner_identity TEXT",
        ),
    ),
)
LATEST = MIGRATIONS[-1].version


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _check_not_newer(version: int, path: Path) -> None:
    if version > LATEST:
        raise StoreError(
            f"the run store was written by a newer kfnb (schema {version}; this kfnb "
            f"knows up to {LATEST})",
            fix="upgrade kfnb, or point KFNB_HOME at another folder",
            where=str(path),
        )


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database to ``LATEST``; return the version it had. ``conn`` is in autocommit."""
    found = schema_version(conn)
    _check_not_newer(found, path)
    if found == LATEST:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(conn)  # another process may have migrated it meanwhile
        _check_not_newer(found, path)
        for migration in MIGRATIONS:
            if migration.version > found:
                for statement in migration.statements:
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {LATEST}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found
