"""What every cell of a notebook declares and which step it runs in: the ``CellInfo``s of the
REST API's ``PipelineView.cells``.

The JupyterLab extension draws its cell badges and fills its cell tools from these, so it never
reads the tag language itself: the server is the one authority on tags and ``%%step`` headers.
A cell's *declaration* is read as the parser reads it (tags merged with the header,
:func:`kfnb.notebook.magic.cell_directive`); the step a cell *runs in* comes from the parsed
pipeline, because a cell without a declaration continues the section above it. For a notebook
that does not parse (``pipeline`` None) a cell is only known to run in the step it declares.

A cell whose tags or header cannot be read still gets its entry, with no role and editable, so
the cell tools can rewrite the step tags that are wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..dag import GPU, Pipeline
from .magic import cell_directive, split_header
from .tags import Directive, TagError

#: Roles the cell tools may edit: a step, or nothing yet (the cell continues the step above).
EDITABLE_ROLES = (None, "step")


def cell_source(cell: Mapping[str, Any]) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def cell_tags(cell: Mapping[str, Any]) -> list[Any]:
    """A cell's ``metadata.tags`` as a list (never None)."""
    tags = (cell.get("metadata") or {}).get("tags") or []
    return list(tags) if isinstance(tags, (list, tuple)) else []


def declaration(cell: Mapping[str, Any]) -> Directive | None:
    """What a code cell declares (tags and ``%%step`` header), or None when it cannot be read."""
    try:
        return cell_directive(cell_tags(cell), cell_source(cell))
    except TagError:
        return None


def cell_infos(nb: Mapping[str, Any], pipeline: Pipeline | None) -> list[dict[str, Any]]:
    """One ``CellInfo`` per cell of ``nb`` (markdown and raw cells too), in order."""
    runs_in = {}
    if pipeline is not None:
        runs_in = {cell.index: step.name for step in pipeline.steps for cell in step.cells}
    return [
        cell_info(index, cell, runs_in.get(index), pipeline is not None)
        for index, cell in enumerate(nb.get("cells", []))
    ]


def cell_info(
    index: int, cell: Mapping[str, Any], runs_in: str | None, parsed: bool
) -> dict[str, Any]:
    """The ``CellInfo`` of one cell; ``runs_in`` is its step in the parsed pipeline (``parsed``
    False: the notebook does not parse, and the cell's own declaration is all there is)."""
    kind = cell.get("cell_type")
    code = kind == "code"
    d = declaration(cell) if code else Directive()
    header = split_header(cell_source(cell))[0] if code else None
    role = d.role if d is not None else None
    declared = role == "step"
    if not parsed and declared and d is not None:
        runs_in = d.step
    if header is not None:
        declared_by: str | None = "magic"
    elif d is not None and role is not None:
        declared_by = "tags"
    else:
        declared_by = None
    cell_id = cell.get("id")
    return {
        "index": index,
        "id": cell_id if isinstance(cell_id, str) else None,
        "type": kind if kind in ("code", "markdown", "raw") else "raw",
        "role": role,
        "step": runs_in,
        "starts": declared and d is not None and d.step == runs_in,
        "declared_by": declared_by,
        "after": list(d.prev) if d is not None else [],
        "gpus": int(d.resources.get(GPU, "0")) if d is not None else 0,
        "image": d.image if d is not None else None,
        "editable": code and role in EDITABLE_ROLES,
    }
