"""Notebooks written to disk and a run store of their own, for tests that run real kernels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from kfnb.tracking import Store


@pytest.fixture(autouse=True)
def kfnb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's ~/.kfnb: every test gets its own KFNB_HOME."""
    home = tmp_path / "kfnb-home"
    monkeypatch.setenv("KFNB_HOME", str(home))
    return home


@pytest.fixture
def store(kfnb_home: Path) -> Store:
    return Store(kfnb_home)


@pytest.fixture
def write_notebook(tmp_path: Path) -> Callable[..., Path]:
    """``write_notebook("name", ("step:a", "x = 1"), "y = x")`` -> path of a notebook file."""

    def write(name: str, *cells: Any, metadata: dict[str, Any] | None = None) -> Path:
        nb = new_notebook(
            metadata={
                "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                **(metadata or {}),
            }
        )
        for spec in cells:
            if isinstance(spec, str):
                nb.cells.append(new_code_cell(spec))
            else:
                tags, source = spec
                tags = [tags] if isinstance(tags, str) else list(tags)
                nb.cells.append(new_code_cell(source, metadata={"tags": tags}))
        folder = tmp_path / "project"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.ipynb"
        nbformat.write(nb, path)
        return path

    return write
