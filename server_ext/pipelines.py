"""``GET|POST /kfnb/api/pipeline``: a notebook read as a pipeline, for the side panel's DAG.

``GET ?path=P`` reads the saved file; ``POST {"path": P, "notebook": {...}}`` the live notebook
model (maybe unsaved), with ``path`` still locating it (its folder, its name). Either answers a
``PipelineView``, 200 for any notebook that exists, broken or not: a broken one has ``ok``
false, ``pipeline`` null and ``problems`` saying where and why (read from the error's
attributes). The pipeline is ``kfnb.spec.pipeline_view``, the form a run stores too, with the
layout the panel draws (``kfnb.layout.with_layout``). ``cells`` describes every cell, broken
notebook or not (``kfnb.notebook.cells.cell_infos``): the extension's badges and cell tools read
it and never parse tags themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
import tornado.web
from jupyter_server.auth.decorator import authorized

from kfnb.errors import KfnbError, NotebookError, PipelineError, SourceError
from kfnb.layout import with_layout
from kfnb.notebook import parse_notebook
from kfnb.notebook.cells import cell_infos
from kfnb.notebook.parser import read_notebook
from kfnb.spec import pipeline_view

from .base import KfnbHandler
from .errors import BadRequest


def describe(path: str, os_path: Path, notebook: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The PipelineView of the notebook file ``os_path``, or of ``notebook`` found there."""
    try:
        nb = read_notebook(os_path) if notebook is None else as_v4(notebook)
    except NotebookError as err:  # a file that is no notebook: no cells to describe
        return _broken(path, err, [])
    try:
        pipeline = parse_notebook(nb, os_path)
    except (NotebookError, PipelineError, SourceError) as err:
        return _broken(path, err, cell_infos(nb, None))
    return {
        "path": path,
        "ok": True,
        "problems": [],
        "pipeline": with_layout(pipeline_view(pipeline)),
        "cells": cell_infos(nb, pipeline),
    }


def _broken(path: str, err: KfnbError, cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {"path": path, "ok": False, "problems": [problem(err)], "pipeline": None, "cells": cells}


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


def as_v4(notebook: Mapping[str, Any]) -> nbformat.NotebookNode:
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
        self.reply(await self.blocking(describe, normal_path(path), os_path))

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
        self.reply(await self.blocking(describe, normal_path(path), os_path, notebook))


def normal_path(path: str) -> str:
    return "/".join(p for p in path.split("/") if p not in ("", "."))
