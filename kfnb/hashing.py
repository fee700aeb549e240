"""Content hashes of pipeline steps: equal hashes mean a step's earlier results may be reused.

A step's hash covers what decides its results: its code and the prelude (``imports`` and
``functions`` cells), the parameter values it reads or records as metrics, the hashes of the
steps it depends on (so a change anywhere upstream changes every hash below it), the modules
it re-imports, its outputs, resources, image and environment variables (``env``, only when a
step sets some, so hashes of steps without env are what they always were). Node selectors and
tolerations only decide where a step runs, not what it computes, and stay out. Kept apart from
``materialize`` so that a fully cached run imports no notebook machinery.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .dag import Pipeline

HASH_VERSION = 1


def step_hashes(
    pipeline: Pipeline,
    values: Mapping[str, Any] | None = None,
    *,
    context: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Content hash of every step, given parameter ``values`` (defaults where not given).

    ``context`` is what else a backend knows decides results (the local backend: the working
    directory steps read relative paths from, and the kernelspec); it enters every hash.
    """
    given = dict(values or {})
    hashes: dict[str, str] = {}
    prelude_code = [c.source for c in pipeline.prelude]
    for step in pipeline.toposort():
        read = set(pipeline.step_parameters(step))
        params = {
            name: [p.type, given.get(name, p.default)]
            for name, p in sorted(pipeline.parameters.items())
            if name in read
        }
        payload = {
            "v": HASH_VERSION,
            "code": prelude_code + [c.source for c in step.cells],
            "params": params,
            "inputs": {v: [p, hashes[p]] for v, p in sorted(step.inputs.items())},
            "after": sorted(hashes[d] for d in step.after),
            "imports": dict(sorted(step.imports.items())),
            "outputs": step.outputs,
            "resources": dict(sorted(step.resources.items())),
            "image": step.image,
            **({"env": dict(sorted(step.env.items()))} if step.env else {}),
            **({"context": dict(context)} if context else {}),
        }
        blob = json.dumps(payload, sort_keys=True, default=repr).encode()
        hashes[step.name] = hashlib.sha256(blob).hexdigest()
    return {s.name: hashes[s.name] for s in pipeline.steps}


def independent_steps(pipeline: Pipeline, names: set[str]) -> set[str]:
    """Steps whose content hash none of the parameters ``names`` enters (directly or through
    an upstream step): the same in every run that varies only those parameters (a study's
    trials, a sweep's sets), so one computes them and the step cache serves the others."""
    found: set[str] = set()
    for step in pipeline.toposort():
        reads = set(pipeline.step_parameters(step))
        if not reads & names and all(d in found for d in step.after):
            found.add(step.name)
    return found
