"""The errors the run store raises: all ``KfnbError``s, each saying which run, step or file.

Each carries ``message`` (what went wrong), ``where`` (the run, step or file) and ``fix`` (what to
do) as attributes; ``str(err)`` renders them once (see ``kfnb.errors``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from ..errors import KfnbError


class TrackingError(KfnbError):
    """Root of the run store's errors."""


class StoreError(TrackingError):
    """The store itself cannot be used: written by a newer kfnb, not a database, locked, full,
    read-only. The subclasses below say which (``kfnb.tracking.db`` picks one from SQLite's
    error and what the store's folder shows); each names the file in ``where``."""


class StoreLocked(StoreError):
    """Another process held the store locked for longer than the busy timeout."""


class StoreDiskFull(StoreError):
    """The disk (or the user's quota) that holds the store has no room left to write it."""


class StoreReadOnly(StoreError):
    """The store cannot be written: a read-only mount, or files and folder this user may not
    write. What only reads it still works (``Store.read_only``)."""


class StoreUnavailable(StoreError):
    """The store cannot be opened or created: its folder is missing or a file, or the disk
    fails."""


class StoreCorrupt(StoreError):
    """The store's file is not a usable kfnb database (overwritten, cut short)."""


class RunNotFound(TrackingError, LookupError):
    """No run has this id (or id prefix)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}", fix="`kfnb runs` lists the recorded runs")


class AmbiguousRunId(TrackingError, LookupError):
    """An id prefix that several runs share."""

    def __init__(self, prefix: str, candidates: list[str], more: bool = False) -> None:
        self.prefix = prefix
        self.candidates = candidates
        listed = ", ".join(candidates) + (" and more" if more else "")
        super().__init__(
            f"run id prefix {prefix!r} is ambiguous: it matches {listed}",
            fix="give more characters of the id",
        )


class StepNotFound(TrackingError, LookupError):
    """The run has no step of this name."""

    def __init__(self, run_id: str, step: str, known: list[str]) -> None:
        self.run_id = run_id
        self.step = step
        have = ", ".join(repr(s) for s in known) if known else "none"
        close = difflib.get_close_matches(step, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"run {run_id} has no step {step!r} (its steps: {have}){hint}")


class UnknownRunKind(TrackingError, ValueError):
    """A run kind that is not one of ``models.RUN_KINDS``."""

    def __init__(self, kind: object, known: Sequence[str]) -> None:
        self.kind = kind
        close = difflib.get_close_matches(str(kind), list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown run kind {kind!r}{hint}", fix=f"use one of: {', '.join(known)}")


class InvalidParent(TrackingError, ValueError):
    """A parent run whose kind may not have a child of the new run's kind."""

    def __init__(self, parent_id: str, parent_kind: str, kind: str, allowed: Sequence[str]) -> None:
        self.parent_id = parent_id
        self.parent_kind = parent_kind
        self.kind = kind
        if allowed:
            fix = f"a {parent_kind} run's children are {' or '.join(allowed)} runs"
        else:
            fix = f"a {parent_kind} run has no child runs; create the {kind} run without a parent"
        super().__init__(
            f"a {kind} run cannot be a child of run {parent_id} (a {parent_kind} run)", fix=fix
        )


class InvalidTransition(TrackingError):
    """A status change the run (or step) state machine does not allow."""

    def __init__(
        self, run_id: str, old: str, new: str, *, step: str | None = None, reason: str = ""
    ) -> None:
        self.run_id = run_id
        self.step = step
        self.old = old
        self.new = new
        what = f"step {step!r} of run {run_id}" if step else f"run {run_id}"
        tail = f": {reason}" if reason else ""
        super().__init__(f"{what} cannot go from {old} to {new}{tail}")


class MetricValueError(TrackingError, TypeError):
    """A metric value that is not a real number."""
