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
"""

from __future__ import annotations

import socket
import time

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
    with db.write() as conn:
        now_row = conn.execute(
            "SELECT status, runner_pid FROM runs WHERE id = ?", (rid,)
        ).fetchone()
        if now_row is None or now_row["status"] in TERMINAL_RUN or now_row["runner_pid"] != pid:
            return False
        transition_run(
            conn, rid, now_row["status"], "FAILED", reason, time.time(), step_reason=reason
        )
    return True
