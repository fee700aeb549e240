"""``POST /kfnb/api/cells/step``: make one cell of a live notebook start (or stop starting) a step.

The body is ``{"path": P, "notebook": {...}, "index": I, "step": {"name", "after", "gpus",
"image"}}``: the live notebook model (maybe unsaved), the cell, and what the cell tools ask.
The answer is ``{"index", "tags", "source"}``, the cell's new ``metadata.tags`` and source,
which the client applies to its model; nothing is written here. The grammar's rules and its
messages are ``kfnb.notebook.edit.edit_step``'s: a refusal is a 400 naming the cell, with a fix.
"""

from __future__ import annotations

from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized

from kfnb.notebook.edit import SETTINGS, edit_step

from .base import KfnbHandler
from .errors import BadRequest
from .pipelines import as_v4, normal_path

FIELDS = ("path", "notebook", "index", "step")
SHAPE = '{"path": P, "notebook": {...}, "index": I, "step": {"name", "after", "gpus", "image"}}'


class CellStepHandler(KfnbHandler):
    """``POST cells/step``: the new tags and source of one cell (see the module docstring)."""

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(unknown)}", fix=f"send {SHAPE}")
        notebook = body.get("notebook")
        if not isinstance(notebook, dict):
            raise BadRequest("notebook: the notebook model (nbformat JSON object) is required")
        settings = _settings(body.get("step"))
        path = body.get("path")
        self.paths.notebook(path, must_exist=False)
        assert isinstance(path, str)
        nb, index = as_v4(notebook), body.get("index")
        self.reply(await self.blocking(edit_step, nb, index, settings, normal_path(path)))


def _settings(step: Any) -> dict[str, Any]:
    """``step`` with the contract's ``StepSettings`` fields, all of them; ``edit_step`` checks
    their types and values (and ``index``), as it does for every caller."""
    if not isinstance(step, dict):
        raise BadRequest(
            "step: the settings {name, after, gpus, image} are required", fix=f"send {SHAPE}"
        )
    unknown = sorted(set(step) - set(SETTINGS))
    missing = [f for f in SETTINGS if f not in step]
    if unknown or missing:
        wrong = ", ".join([*(f"unknown {f}" for f in unknown), *(f"no {f}" for f in missing)])
        raise BadRequest(f"step: {wrong}", fix="send step as {name, after, gpus, image}")
    return step
