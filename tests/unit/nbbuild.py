"""Builders for small in-memory notebooks (a module of its own: `from conftest import ...`
would find tests/integration/conftest.py when both folders are collected in one session)."""

from __future__ import annotations

from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CellSpec = str | tuple[str, ...] | tuple[str, list[str]]


def build_notebook(*cells: Any, metadata: dict[str, Any] | None = None) -> nbformat.NotebookNode:
    """``build_notebook(("step:a", "x = 1"), "y = x", md("# t"))``: a tag list (or one tag
    string) then the source; a bare string is an untagged code cell."""
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
            **(metadata or {}),
        }
    )
    for spec in cells:
        if isinstance(spec, nbformat.NotebookNode):
            nb.cells.append(spec)
        elif isinstance(spec, str):
            nb.cells.append(new_code_cell(spec))
        else:
            tags, source = spec
            tags = [tags] if isinstance(tags, str) else list(tags)
            nb.cells.append(new_code_cell(source, metadata={"tags": tags}))
    return nb


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text)
