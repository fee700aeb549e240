"""The step cache: reuse an earlier run's results for a step whose content hash matches.

A step's content hash (``materialize.step_hashes``) covers its code and the prelude, the
parameter values it reads, the hashes of the steps it depends on, its resources and image. A step
may be served from the cache when caching is on for the run and for the step (``cache:off`` tag,
``%%step --no-cache``, ``kfnb run --no-cache``), and an earlier step with the same hash ended
SUCCEEDED (or CACHED) and its saved outputs are still on disk. Since the hash covers the
upstream hashes, a changed step invalidates everything downstream of it.

A resumed run (``kfnb run --resume RUN``) reuses the steps of RUN that succeeded, whatever the
cache settings say: a step whose hash matches RUN's SUCCEEDED (or CACHED) step and whose outputs
RUN still holds is served from RUN (``find_hits(..., reuse=RUN's steps)``); the others run.

Restoring links the earlier step's output files into this run's data directory (hard links: no
copy, and the files are never written in place, so runs cannot disturb each other), links its
executed notebook, and writes a line to the step's log saying where the results came from. No
kernel is started for a cached step.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ...dag import Pipeline, Step
from ...tracking import StepRun, Store


@dataclass
class CacheHit:
    """Where a step's results can be taken from."""

    step: str
    source: StepRun
    data: Path
    executed: Path | None

    @property
    def origin(self) -> str:
        """``RUN/STEP`` that computed the results (through any chain of cached runs)."""
        return self.source.cached_from or f"{self.source.run_id}/{self.source.name}"


def find_hits(
    pipeline: Pipeline,
    hashes: dict[str, str],
    store: Store,
    *,
    enabled: bool = True,
    run_id: str | None = None,
    reuse: Mapping[str, StepRun] | None = None,
) -> dict[str, CacheHit]:
    """The steps of ``pipeline`` whose results an earlier run can provide. ``reuse``: the steps
    of the run being resumed, by name; one that ended SUCCEEDED or CACHED with the same hash is
    reused even where the cache is off (for the run or the step)."""
    reuse = reuse or {}
    if not enabled and not reuse:
        return {}
    hits: dict[str, CacheHit] = {}
    runs_dir = store.runs_dir
    for step in pipeline.toposort():
        if not all(d in hits for d in step.after):
            continue  # a step that runs makes its dependents run too (its outputs are new)
        old = reuse.get(step.name)
        reusable = old is not None and old.status in ("SUCCEEDED", "CACHED")
        if old is not None and reusable and old.hash == hashes[step.name]:
            candidates = [old]
        elif enabled and step.cache:
            candidates = store.cache_candidates(hashes[step.name], exclude_run=run_id)
        else:
            continue
        for candidate in candidates:
            data = runs_dir / candidate.run_id / "data" / candidate.name
            if _complete(step, data):
                executed = Path(candidate.output_notebook) if candidate.output_notebook else None
                hits[step.name] = CacheHit(step.name, candidate, data, executed)
                break
    return hits


def _complete(step: Step, data: Path) -> bool:
    """Whether every output the step surely saves is in ``data``."""
    conditional = set(step.facts.conditional) if step.facts else set()
    needed = [v for v in step.outputs if v not in conditional]
    if not needed:
        return True
    try:
        names = {p.name.split(".", 1)[0] for p in data.iterdir() if not p.name.startswith(".")}
    except OSError:
        return False
    return all(v in names for v in needed)


def restore(hit: CacheHit, data_dir: Path, executed: Path, log: Path) -> None:
    """Put a cache hit's results where this run's steps look for them."""
    target = data_dir / hit.step
    if hit.data.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for path in hit.data.iterdir():
            if path.is_file() and not path.name.startswith("."):
                _link(path, target / path.name)
    if hit.executed is not None and hit.executed.exists():
        _link(hit.executed, executed)
    with open(log, "a") as f:
        run, _, step = hit.origin.partition("/")
        f.write(
            f"cached: results of step {step!r} of run {run} "
            f"(same content hash {(hit.source.hash or '')[:12]}); no kernel started\n"
        )


def _link(source: Path, target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copy2(source, target)
