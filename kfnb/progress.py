"""Showing a run in a terminal: live progress while it runs, a summary when it ends.

On a terminal the step table is redrawn in place a few times a second; elsewhere (a CI log, a
pipe) one line is printed per state change, so logs stay readable. Marks and durations come from
``kfnb.format``, which the notebook widgets share.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from .format import elapsed, run_lines, took
from .tracking import TERMINAL_RUN, Run

__all__ = ["follow", "render", "summary"]


render = run_lines


def follow(
    get: Callable[[], Run],
    out: TextIO = sys.stdout,
    interval: float = 0.25,
    live: bool | None = None,
    sleep: Callable[[float], object] = time.sleep,
    ended: Callable[[], bool] | None = None,
) -> Run:
    """Show a run until it ends; return its final record. ``sleep(interval)`` waits between
    looks; a runner's own process passes one that returns as soon as the run ends, and
    ``ended`` (its handle's view), which can know the run ended when the store could not record
    it (a full disk): following never outlives the run."""
    live = out.isatty() if live is None else live
    drawn = 0
    seen: dict[str, tuple[str, int]] = {}
    start = time.time()
    while True:
        run = get()
        if live:
            lines = render(run)
            if drawn:
                out.write(f"\x1b[{drawn}F")
            for line in lines:
                out.write("\x1b[2K" + line + "\n")
            drawn = len(lines)
        else:
            for s in run.steps:
                key = (s.status, s.attempt)
                if seen.get(s.name) != key and not (s.status == "PENDING" and s.name not in seen):
                    stamp = elapsed(start, time.time())
                    out.write(
                        f"[{stamp:>7}] {s.name} {s.status.lower()}"
                        + (f" (attempt {s.attempt})" if s.attempt > 1 else "")
                        + "\n"
                    )
                seen[s.name] = key
        out.flush()
        if run.status in TERMINAL_RUN:
            return run
        if ended is not None and ended():
            return get()  # it ended since the look above: its record as it ended
        sleep(interval)


def summary(run: Run) -> list[str]:
    """What to print when a run has ended: the outcome, failures, metrics, where files are."""
    lines = [f"{run.name}: {run.status.lower()} in {took(run)} (run {run.id})"]
    for s in run.steps:
        if s.status == "FAILED" and s.error:
            lines.append(f"  ✗ {s.error.get('message') or s.name}")
            tb = (s.error.get("traceback") or "").strip().splitlines()
            lines += [f"      {ln}" for ln in tb[-6:]]
            lines.append(f"      full log: kfnb logs {run.id} {s.name}")
    cached = [s.name for s in run.steps if s.status == "CACHED"]
    if cached:
        lines.append(
            f"  cached: {', '.join(cached)} (results of earlier runs; --no-cache runs them again)"
        )
    if run.metrics:
        lines.append("  metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in run.metrics.items()))
    lines.append(f"  artifacts: {run.artifacts_dir}")
    return lines
