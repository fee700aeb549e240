"""How kfnb writes run facts for people, on every surface: durations, times, status marks and
status colours, metric values, a run as plain text.

Neutral ground: the terminal renderer (``kfnb.progress``, ``kfnb.cli``) and the notebook widgets
(``kfnb.widgets``) both draw from here, so a status looks and a duration reads the same in a
terminal, a widget and a saved notebook. Nothing here prints or imports a surface.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tracking import Run, StepRun

#: Step or run status -> the one-character mark a terminal shows.
MARKS: dict[str, str] = {
    "PENDING": "·",
    "RUNNING": "▶",
    "SUCCEEDED": "✓",
    "CACHED": "✓",
    "FAILED": "✗",
    "SKIPPED": "-",
    "CANCELING": "■",
    "CANCELED": "■",
    "PRUNED": "✂",
}

#: Step or run status -> (fill, text colour) of its badge or DAG node.
STATUS_COLORS: dict[str, tuple[str, str]] = {
    "PENDING": ("#9e9e9e", "#ffffff"),
    "RUNNING": ("#1e88e5", "#ffffff"),
    "SUCCEEDED": ("#43a047", "#ffffff"),
    "FAILED": ("#e53935", "#ffffff"),
    "CACHED": ("#00897b", "#ffffff"),
    "SKIPPED": ("#e0e0e0", "#616161"),
    "CANCELED": ("#cfd8dc", "#455a64"),
    "PRUNED": ("#ffe082", "#5d4037"),
}

_UNKNOWN_COLORS = ("#9e9e9e", "#ffffff")


def mark(status: str) -> str:
    """The terminal mark of ``status`` (``?`` for one kfnb does not know)."""
    return MARKS.get(status, "?")


def colors(status: str) -> tuple[str, str]:
    """(fill, text colour) of ``status``; a run that is being cancelled looks cancelled."""
    if status == "CANCELING":
        return STATUS_COLORS["CANCELED"]
    return STATUS_COLORS.get(status, _UNKNOWN_COLORS)


def elapsed(start: float | None, end: float | None, now: float | None = None) -> str:
    """``5.2s``, ``2m05s``, ``3h01m``: from ``start`` to ``end`` (else ``now``); "" unstarted."""
    if start is None:
        return ""
    seconds = (end if end is not None else (now or time.time())) - start
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def took(run: Run, now: float | None = None) -> str:
    """How long a run has taken (so far): from its start, or its creation while it waits."""
    return elapsed(run.started_at or run.created_at, run.finished_at, now)


def timestamp(when: float | None) -> str:
    """A local time as ``YYYY-MM-DD HH:MM:SS`` ("" when unknown)."""
    if when is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def value(v: object) -> str:
    """A metric or parameter value, short: floats to 6 significant digits."""
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else repr(v)
    return str(v)


def step_line(step: StepRun, width: int, now: float | None = None) -> str:
    """One step as a line of text: mark, name, status, time, attempt, GPUs, cache source."""
    extra = ""
    if step.attempt > 1:
        extra += f"  attempt {step.attempt}"
    if step.gpus:
        extra += f"  gpu {','.join(step.gpus)}"
    if step.cached_from:
        extra += f"  from {step.cached_from}"
    spent = elapsed(step.started_at, step.finished_at, now)
    return f"  {mark(step.status)} {step.name:<{width}}  {step.status:<9}  {spent:>7}{extra}"


def run_lines(run: Run, now: float | None = None) -> list[str]:
    """A run as plain text: ``NAME  run ID  STATUS  TIME``, then one line per step (what a
    terminal shows and a widget's ``text/plain``)."""
    width = max((len(s.name) for s in run.steps), default=4)
    head = f"{run.name}  run {run.id}  {run.status}  {took(run, now)}"
    return [head] + [step_line(s, width, now) for s in run.steps]
