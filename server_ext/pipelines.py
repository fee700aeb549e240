"""``GET|POST /kfnb/api/pipeline``: a notebook read as a pipeline, for the side panel's DAG.

``GET ?path=P`` reads the saved file; ``POST {"path": P, "notebook": {...}}`` the live notebook
model (maybe unsaved), with ``path`` still locating it (its folder, its name). Either answers a
``PipelineView``, 200 for any notebook that exists, broken or not: a broken one has ``ok``
false, ``pipeline`` null and ``problems`` saying where and why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
import tornado.web
from jupyter_server.auth.decorator import authorized

from kfnb.dag import Pipeline
from kfnb.errors import NotebookError, PipelineError, SourceError

from .errors import BadRequest
from .handlers import KfnbHandler

#: Fields of a step in a PipelineView (the contract), in this order.
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
_FIX = re.compile(r"\.\s+Fix:\s+", re.S)


def describe(path: str, os_path: Path, notebook: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The PipelineView of the notebook file ``os_path``, or of ``notebook`` found there."""
    try:
        if notebook is None:
            pipeline = Pipeline.from_notebook(os_path)
        else:
            pipeline = Pipeline.from_nb(_as_v4(notebook), os_path)
    except NotebookError as err:
        problem = {
            "message": err.message,
            "cell_index": err.cell_index,
            "cell_line": err.cell_line,
            "fix": err.fix,
        }
        return {"path": path, "ok": False, "problems": [problem], "pipeline": None}
    except (PipelineError, SourceError) as err:
        return {"path": path, "ok": False, "problems": [problem_of(str(err))], "pipeline": None}
    return {"path": path, "ok": True, "problems": [], "pipeline": pipeline_view(pipeline)}


def problem_of(text: str) -> dict[str, Any]:
    """A problem without a cell; ``"... Fix: ..."`` in the text becomes its ``fix``."""
    found = _FIX.split(text, maxsplit=1)
    message, fix = (found[0], found[1]) if len(found) == 2 else (text, "")
    return {"message": message, "cell_index": None, "cell_line": None, "fix": fix or None}


def pipeline_view(pipeline: Pipeline) -> dict[str, Any]:
    """The ``pipeline`` of a PipelineView: the IR with its edges and a run order."""
    steps = []
    for step in pipeline.steps:
        full = step.to_dict()
        steps.append({key: full[key] for key in STEP_FIELDS})
    edges = []
    for step in pipeline.steps:
        for upstream in step.after:
            variables = sorted(v for v, source in step.inputs.items() if source == upstream)
            edges.append({"source": upstream, "target": step.name, "variables": variables})
    return {
        "name": pipeline.name,
        "description": pipeline.description,
        "experiment": pipeline.experiment,
        "image": pipeline.image,
        "parameters": {name: _jsonable(p.to_dict()) for name, p in pipeline.parameters.items()},
        "steps": steps,
        "edges": edges,
        "order": [s.name for s in pipeline.toposort()],
        "metrics": [{"name": m.name, "step": m.step} for m in pipeline.metrics],
    }


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """A parameter's default as JSON can hold it (a tuple as a list, others as text)."""
    loaded: dict[str, Any] = json.loads(json.dumps(value, default=repr))
    return loaded


def _as_v4(notebook: Mapping[str, Any]) -> nbformat.NotebookNode:
    """The live model as an nbformat 4 node (older versions converted)."""
    if not isinstance(notebook.get("cells", []), list):
        raise BadRequest("notebook.cells must be a list of cells (nbformat 4 JSON)")
    if notebook.get("nbformat", 4) == 4:
        return nbformat.from_dict(notebook)
    try:
        converted: nbformat.NotebookNode = nbformat.reads(json.dumps(notebook), as_version=4)
    except Exception as err:  # nbformat's several error types
        raise BadRequest(f"the notebook model is not a readable notebook: {err}") from err
    return converted


class PipelineHandler(KfnbHandler):
    """``GET pipeline?path=P`` and ``POST pipeline`` ``{"path": P, "notebook": {...}}``."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        path = self.get_query_argument("path", None)
        os_path = self.paths.notebook(path)
        assert path is not None
        self.reply(await self.blocking(describe, _normal(path), os_path))

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        unknown = sorted(set(body) - {"path", "notebook"})
        if unknown:
            raise BadRequest(
                f"unknown field(s) {', '.join(unknown)}; the body is "
                '{"path": P, "notebook": {...}}'
            )
        notebook = body.get("notebook")
        if not isinstance(notebook, dict):
            raise BadRequest("notebook: the notebook model (nbformat JSON object) is required")
        path = body.get("path")
        os_path = self.paths.notebook(path, must_exist=False)
        assert isinstance(path, str)
        self.reply(await self.blocking(describe, _normal(path), os_path, notebook))


def _normal(path: str) -> str:
    return "/".join(p for p in path.split("/") if p not in ("", "."))
