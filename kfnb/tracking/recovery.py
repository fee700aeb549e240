"""Ending the runs whose runner died: what every CLI start and every submit calls first.

A local run is driven by a runner process (the CLI, a notebook kernel, the Jupyter server). If
that process dies (killed, OOM-killed, the machine restarted) the run would stay RUNNING for
ever. ``recover`` finds such runs and ends them ``FAILED`` with the reason, their running steps
``FAILED`` and their pending steps ``SKIPPED``; metrics, events and finished steps stay.

Whether a runner is gone is ``liveness.verdict``: a run is only failed on evidence this process
can see (its runner's PID namespace, or a restart of this machine). Remote runs (no runner pid)
are left to their backend. Each run is judged outside any transaction (checking processes takes
time) and ended in its own write transaction, after checking that nobody ended, deleted or took
over the run meanwhile.

A dead run ends when its runner died, not when somebody noticed (that may be minutes or days
later, at the next CLI start): its ``finished_at`` (and its closed steps', and the event that
records the end) is the best evidence there is of when it was last alive: the last thing it
recorded (an event, a step's start or end, a metric, an artifact, a child run's start or end)
or wrote in its folder (a step's log or executed notebook, saved as cells run; the heartbeat
file the local scheduler touches as it looks for cancel requests), never later than the
notice.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from pathlib import Path

from .db import Database
from .liveness import Runner, current_identity, parse, verdict
from .models import RUN_STATUSES, TERMINAL_RUN
from .runs import transition_run

_OPEN = tuple(s for s in RUN_STATUSES if s not in TERMINAL_RUN)


def recover(db: Database) -> list[str]:
    """End as FAILED the unfinished runs whose runner is gone; return their ids."""
    host = socket.gethostname()
    here = current_identity()
    with db.read() as conn:
        rows = conn.execute(
            "SELECT id, runner_pid, runner_started_at, runner_host, runner_identity FROM runs "
            f"WHERE runner_pid IS NOT NULL AND status IN ({', '.join('?' * len(_OPEN))})",
            _OPEN,
        ).fetchall()
    ended = []
    for row in rows:
        runner = Runner(
            row["runner_pid"],
            row["runner_started_at"],
            row["runner_host"],
            parse(row["runner_identity"]),
        )
        reason = verdict(runner, here, host)
        if reason is not None and _end(db, row["id"], runner.pid, reason):
            ended.append(row["id"])
    return ended


def _end(db: Database, rid: str, pid: int, reason: str) -> bool:
    """End run ``rid`` as FAILED unless it ended, went away or changed runner meanwhile."""
    folder = db.path.parent / "runs" / rid  # the store's layout: KFNB_HOME/runs/<id>
    written = _last_written(folder)  # outside the transaction: it reads the disk
    with db.write() as conn:
        now_row = conn.execute(
            "SELECT status, runner_pid FROM runs WHERE id = ?", (rid,)
        ).fetchone()
        if now_row is None or now_row["status"] in TERMINAL_RUN or now_row["runner_pid"] != pid:
            return False
        died = died_at(conn, rid, written, time.time())
        transition_run(conn, rid, now_row["status"], "FAILED", reason, died, step_reason=reason)
    return True


def died_at(conn: sqlite3.Connection, rid: str, written: float | None, noticed: float) -> float:
    """When run ``rid``'s runner was last seen alive: the latest of what it recorded and what it
    wrote (``written``), no earlier than the run's start and no later than ``noticed``."""
    recorded = conn.execute(
        """SELECT max(
               coalesce((SELECT max(time) FROM events WHERE run_id = :r), 0),
               coalesce((SELECT max(max(coalesce(started_at, 0), coalesce(finished_at, 0)))
                         FROM steps WHERE run_id = :r), 0),
               coalesce((SELECT max(timestamp) FROM metrics WHERE run_id = :r), 0),
               coalesce((SELECT max(created_at) FROM artifacts WHERE run_id = :r), 0),
               coalesce((SELECT max(coalesce(started_at, 0), created_at)
                         FROM runs WHERE id = :r), 0),
               coalesce((SELECT max(max(coalesce(started_at, 0), coalesce(finished_at, 0)))
                         FROM runs WHERE parent_id = :r), 0)
           )""",
        {"r": rid},
    ).fetchone()[0]
    last = max(float(recorded or 0.0), written or 0.0)
    return min(last, noticed) if last > 0 else noticed


def _last_written(folder: Path, limit: int = 2000) -> float | None:
    """The latest modification time of the files in a run's folder (two levels: step logs,
    executed notebooks, ``.work``), or None where there is none; ``limit`` files at most."""
    latest: float | None = None
    seen = 0
    stack = [(folder, 0)]
    while stack and seen < limit:
        where, depth = stack.pop()
        try:
            entries = list(os.scandir(where))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < 2:
                        stack.append((Path(entry.path), depth + 1))
                    continue
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            latest = mtime if latest is None else max(latest, mtime)
    return latest
