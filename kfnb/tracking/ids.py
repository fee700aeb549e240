"""Run ids: short, readable, unique, and sorted by creation.

An id is the UTC creation time to the second plus six hex digits, ``20261123-195601-a1b2c3``.
The store makes each id inside the write transaction that inserts the run, from the newest id
already there: a run created in the same second (or after the clock stepped back) counts up
from that id instead of drawing at random, so ids sort in creation order across every process
that shares the store. Any unique prefix names a run, as with git commits: ``resolve`` finds
the run it names.
"""

from __future__ import annotations

import calendar
import secrets
import sqlite3
import time

from .errors import AmbiguousRunId, RunNotFound

_STAMP = "%Y%m%d-%H%M%S"
_SUFFIX_BITS = 24
_MAX_STEP = 4096


def _stamp(seconds: float) -> str:
    return time.strftime(_STAMP, time.gmtime(seconds))


def _fresh_suffix() -> int:
    # the lower half of the range, so later ids of the same second have room to count up
    return secrets.randbelow(1 << (_SUFFIX_BITS - 1))


def new_run_id(now: float, newest: str | None = None) -> str:
    """A run id for a run created at ``now`` that sorts after ``newest`` (the latest id so far)."""
    candidate = f"{_stamp(now)}-{_fresh_suffix():06x}"
    if newest is None or candidate > newest:
        return candidate
    try:
        date, clock, suffix = newest.split("-")
        last_second = calendar.timegm(time.strptime(f"{date}-{clock}", _STAMP))
        count = int(suffix, 16) + 1 + secrets.randbelow(_MAX_STEP)
    except ValueError:  # not an id this module made; nothing to keep in order with
        return candidate
    if count < 1 << _SUFFIX_BITS:
        return f"{date}-{clock}-{count:06x}"
    return f"{_stamp(last_second + 1)}-{_fresh_suffix():06x}"  # the second is full: borrow the next


def prefix_range(prefix: str) -> tuple[str, str]:
    """Bounds ``lo <= id < hi`` of the ids that start with ``prefix`` (for an index range scan)."""
    return prefix, prefix + "\U0010ffff"


def resolve(conn: sqlite3.Connection, run_id: str) -> str:
    """The full id of the run that ``run_id`` (an id or a unique prefix) names, in ``conn``'s
    transaction; ``RunNotFound`` when none does, ``AmbiguousRunId`` when several do."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise RunNotFound(str(run_id))
    lo, hi = prefix_range(run_id)
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 11", (lo, hi)
        )
    ]
    if run_id in ids:
        return run_id
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise RunNotFound(run_id)
    raise AmbiguousRunId(run_id, ids[:10], more=len(ids) > 10)
