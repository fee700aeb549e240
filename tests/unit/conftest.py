"""Builders for small in-memory notebooks."""

from __future__ import annotations

from collections.abc import Callable

import nbformat
import pytest
from nbbuild import CellSpec, build_notebook, md

__all__ = ["CellSpec", "build_notebook", "md"]


@pytest.fixture
def nb() -> Callable[..., nbformat.NotebookNode]:
    return build_notebook
