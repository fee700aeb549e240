"""``GET|POST /kfnb/api/pipeline``: a notebook read as a pipeline, for the side panel's DAG.

``GET ?path=P`` reads the saved file; ``POST {"path": P, "notebook": {...}}`` the live notebook
model (maybe unsaved), with ``path`` still locating it (its folder, its name). Either answers a
``PipelineView``, 200 for any notebook that exists, broken or not: a broken one has ``ok``
false, ``pipeline`` null and ``problems`` saying where and why (read from the error's
attributes). The pipeline is ``kfnb.spec.pipeline_view``, the form a run stores too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
import tornado.web
from jupyter_server.auth.decorator import authorized

from kfnb.dag import Pipeline
from kfnb.errors import KfnbError, NotebookError, PipelineError, SourceError
from kfnb.spec import pipeline_view

from .base import KfnbHandler
from .errors import BadRequest


def describe(path: str, os_path: Path, notebook: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The PipelineView of the notebook file ``os_path``, or of ``notebook`` found there."""
    try:
        if notebook is None:
            pipeline = Pipeline.from_notebook(os_path)
        else:
            pipeline = Pipeline.from_nb(_as_v4(notebook), os_path)
    except (NotebookError, PipelineError, SourceError) as err:
        return {"path": path, "ok": False, "problems": [problem(err)], "pipeline": None}
    return {"path": path, "ok": True, "problems": [], "pipeline": pipeline_view(pipeline)}


def problem(err: KfnbError) -> dict[str, Any]:
    """A problem of a PipelineView, read from the error's attributes: ``message``, ``fix``,
    ``where``, and the cell (``cell_index``, ``cell_line``; null for pipeline-wide ones)."""
    found = err.to_dict()
    return {
        "message": found["message"],
        "fix": found["fix"],
        "where": found["where"],
        "cell_index": found.get("cell_index"),
        "cell_line": found.get("cell_line"),
    }


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
