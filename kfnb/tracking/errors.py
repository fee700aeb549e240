"""The errors the run store raises: all ``KfnbError``s, each saying which run, step or file."""

from __future__ import annotations

import difflib

from ..errors import KfnbError


class TrackingError(KfnbError):
    """Root of the run store's errors."""


class StoreError(TrackingError):
    """The store itself cannot be used: written by a newer kfnb, not a database, locked."""


class RunNotFound(TrackingError, LookupError):
    """No run has this id (or id prefix)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}. Fix: `kfnb runs` lists the recorded runs")


class AmbiguousRunId(TrackingError, LookupError):
    """An id prefix that several runs share."""

    def __init__(self, prefix: str, candidates: list[str], more: bool = False) -> None:
        self.prefix = prefix
        self.candidates = candidates
        listed = ", ".join(candidates) + (", ..." if more else "")
        super().__init__(
            f"run id prefix {prefix!r} is ambiguous: it matches {listed}. "
            f"Fix: give more characters of the id"
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
