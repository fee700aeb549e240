"""papermill's parameters-cell conventions: a ``parameters`` cell may hold statements beside the
parameters (papermill's binder example); Kale's ``pipeline-parameters`` cell may not."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from papermill.inspection import _infer_parameters

from kfnb.dag import Cell
from kfnb.errors import NotebookError
from kfnb.notebook.parser import parse_notebook
from kfnb.notebook.sections import read_parameters

BINDER = "import os\nimport papermill as pm\nbinder_dir = '..'"


def notebook(*cells: tuple[list[str], str]) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "language": "python"}},
        "cells": [
            {"cell_type": "code", "source": s, "metadata": {"tags": t}, "outputs": []}
            for t, s in cells
        ],
    }


def test_binder_example_parameters_are_papermills_and_imports_run_in_every_step() -> None:
    nb = notebook((["parameters"], BINDER), (["step:a"], "x = pm.__name__ + binder_dir"))
    pipeline = parse_notebook(nb, "binder.ipynb")
    inferred = _infer_parameters(nbformat.from_dict(nb))
    assert list(pipeline.parameters) == [p.name for p in inferred] == ["binder_dir"]
    assert pipeline.parameters["binder_dir"].default == ".."
    assert [(c.index, c.source) for c in pipeline.prelude] == [
        (0, "import os\nimport papermill as pm")
    ]
    assert pipeline.step("a").inputs == {}  # pm comes from the prelude


def test_statements_keep_their_place_among_the_prelude_cells() -> None:
    nb = notebook(
        (["imports"], "import os"),
        (["parameters"], "base = '/data'\nout = os.path.join(base, 'x')  # computed"),
        (["functions"], "def f():\n    return out"),
        (["step:s"], "y = f()"),
    )
    pipeline = parse_notebook(nb, "order.ipynb")
    assert list(pipeline.parameters) == ["base"]
    assert [c.index for c in pipeline.prelude] == [0, 1, 2]
    assert pipeline.prelude[1].source == "out = os.path.join(base, 'x')  # computed"


@pytest.mark.parametrize(
    ("source", "params", "statements"),
    [
        ("a = 1\nb: float = 2", {"a": ("int", 1), "b": ("float", 2)}, ""),
        ("x: Optional[int] = None", {"x": ("any", None)}, ""),  # an annotation kfnb lacks
        ("s = {1, 2}", {}, "s = {1, 2}"),  # a set: papermill lists it, kfnb cannot take it
        ("import os; a = 1", {"a": ("int", 1)}, "import os"),  # one line, two statements
        ("%matplotlib inline\na = 1", {"a": ("int", 1)}, "%matplotlib inline"),
        (
            "for i in range(2):\n    pass\na = 'x'",
            {"a": ("str", "x")},
            "for i in range(2):\n    pass",
        ),
    ],
)
def test_papermill_cells_split_into_parameters_and_statements(
    source: str, params: dict[str, tuple[str, Any]], statements: str
) -> None:
    got = read_parameters([Cell(3, source)], papermill={3})
    assert {n: (p.type, p.default) for n, p in got.params.items()} == params
    assert [(c.index, c.source) for c in got.statements] == (
        [(3, statements)] if statements else []
    )


def test_kale_pipeline_parameters_stay_strict() -> None:
    with pytest.raises(NotebookError, match="may only assign literal values"):
        parse_notebook(notebook((["pipeline-parameters"], BINDER), (["step:a"], "x = 1")))
    with pytest.raises(NotebookError, match="not a literal"):
        read_parameters([Cell(0, "a = 1\nb = a + 1")])


def test_literal_only_parameters_cell_adds_no_prelude() -> None:
    pipeline = parse_notebook(notebook((["parameters"], "a = 1"), (["step:a"], "x = a")))
    assert pipeline.prelude == [] and list(pipeline.parameters) == ["a"]


def test_whole_notebook_mode_reads_statements_too() -> None:
    pipeline = parse_notebook(notebook((["parameters"], BINDER), ([], "print(os.sep, binder_dir)")))
    assert [s.name for s in pipeline.steps] == ["main"]
    assert [c.source for c in pipeline.prelude] == ["import os\nimport papermill as pm"]


def test_invalid_parameters_cell_is_still_an_error() -> None:
    with pytest.raises(NotebookError, match="not valid Python"):
        parse_notebook(notebook((["parameters"], "a = ["), (["step:a"], "x = 1")))
