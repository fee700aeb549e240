"""What a run keeps of what it ran: its spec, stored with the run when it is submitted.

A run is drawn and reported from its record, never from the notebook's current state: edit the
notebook after a run and the run's picture stays as it ran. Every kind of run stores a spec (a
JSON object); a run of a pipeline (kinds ``pipeline``, ``trial``, ``batch`` children) keeps its
pipeline under ``"pipeline"`` in the form ``pipeline_view`` gives: steps with their cells and
settings, edges with the variables that flow on them, typed parameters, the run order and the
metrics. The REST API's ``PipelineView``, ``kfnb show`` and the widgets all read this one form.
"""

from __future__ import annotations

from typing import Any

from .dag import Pipeline
from .jsonio import jsonable

#: Fields of a step in a pipeline view (the REST contract), in this order.
STEP_FIELDS = (
    "name",
    "cells",
    "after",
    "inputs",
    "outputs",
    "resources",
    "image",
    "labels",
    "annotations",
    "retries",
    "timeout",
    "cache",
    "env",
    "node_selector",
    "tolerations",
)


def pipeline_view(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline as JSON data: the IR with its edges (and their variables) and a run order."""
    steps = []
    for step in pipeline.steps:
        full = step.to_dict()
        steps.append({key: full[key] for key in STEP_FIELDS})
    edges = []
    for step in pipeline.steps:
        for upstream in step.after:
            variables = sorted(v for v, source in step.inputs.items() if source == upstream)
            edges.append({"source": upstream, "target": step.name, "variables": variables})
    view: dict[str, Any] = jsonable(
        {
            "name": pipeline.name,
            "description": pipeline.description,
            "experiment": pipeline.experiment,
            "image": pipeline.image,
            "parameters": {n: p.to_dict() for n, p in pipeline.parameters.items()},
            "steps": steps,
            "edges": edges,
            "order": [s.name for s in pipeline.toposort()],
            "metrics": [{"name": m.name, "step": m.step} for m in pipeline.metrics],
        }
    )
    return view


def pipeline_spec(pipeline: Pipeline) -> dict[str, Any]:
    """The spec a pipeline run stores: ``{"pipeline": pipeline_view(...), "source": path}``."""
    return {"pipeline": pipeline_view(pipeline), "source": pipeline.source}
