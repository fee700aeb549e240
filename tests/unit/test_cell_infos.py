"""What every cell declares and which step it runs in (``PipelineView.cells``)."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from nbbuild import build_notebook, md
from nbformat.v4 import new_raw_cell

from kfnb.errors import NotebookError
from kfnb.notebook import parse_notebook
from kfnb.notebook.cells import cell_infos


def infos(nb: nbformat.NotebookNode, parsed: bool = True) -> list[dict[str, Any]]:
    return cell_infos(nb, parse_notebook(nb) if parsed else None)


def brief(info: dict[str, Any]) -> tuple[Any, ...]:
    return (info["role"], info["step"], info["starts"], info["declared_by"], info["editable"])


def test_tagged_cells_and_the_cells_that_continue_them() -> None:
    nb = build_notebook(
        md("# Sales"),
        ("pipeline-parameters", "seed = 1"),
        ("imports", "import math"),
        ("functions", "def f(): return 1"),
        (["hide-input", "step:load", "limit:gpu:2", "image:python:3.11"], "x = seed"),
        "y = x",
        ("skip", "print(y)"),
        (["step:train", "prev:load"], "z = y"),
        ("pipeline-metrics", "print(z)"),
    )
    found = infos(nb)
    assert [brief(i) for i in found] == [
        (None, None, False, None, False),
        ("parameters", None, False, "tags", False),
        ("imports", None, False, "tags", False),
        ("functions", None, False, "tags", False),
        ("step", "load", True, "tags", True),
        (None, "load", False, None, True),
        ("skip", None, False, "tags", False),
        ("step", "train", True, "tags", True),
        ("metrics", None, False, "tags", False),
    ]
    assert [i["index"] for i in found] == list(range(9))
    assert [i["type"] for i in found] == ["markdown"] + ["code"] * 8
    assert [i["id"] for i in found] == [c.id for c in nb.cells]
    assert (found[4]["after"], found[4]["gpus"], found[4]["image"]) == ([], 2, "python:3.11")
    assert (found[7]["after"], found[7]["gpus"], found[7]["image"]) == (["load"], 0, None)


def test_magic_headers_declare_like_tags() -> None:
    nb = build_notebook(
        "%%step imports\nimport os",
        "%%step load --gpus 1 --cpu 2\nx = 1",
        "y = x",
        (["hide-input"], "%%step train --after load --image reg.io/t:1\nz = y"),
    )
    found = infos(nb)
    assert [brief(i) for i in found] == [
        ("imports", None, False, "magic", False),
        ("step", "load", True, "magic", True),
        (None, "load", False, None, True),
        ("step", "train", True, "magic", True),
    ]
    assert (found[1]["gpus"], found[3]["after"], found[3]["image"]) == (1, ["load"], "reg.io/t:1")


def test_a_header_with_matching_tags_is_declared_by_the_magic() -> None:
    nb = build_notebook((["step:a", "limit:gpu:1"], "%%step a --gpus 2\nx = 1"))
    [info] = infos(nb)
    assert (info["declared_by"], info["step"], info["starts"], info["gpus"]) == (
        "magic",
        "a",
        True,
        2,
    )


def test_a_notebook_without_step_tags_is_one_step_no_cell_starts() -> None:
    nb = build_notebook("x = 1", ("pipeline-parameters", "n = 2"), "y = x + n")
    found = cell_infos(nb, parse_notebook(nb, "churn.ipynb"))
    assert [brief(i) for i in found] == [
        (None, "churn", False, None, True),
        ("parameters", None, False, "tags", False),
        (None, "churn", False, None, True),
    ]


def test_code_above_the_first_step_runs_in_it() -> None:
    found = infos(build_notebook("a = 1", ("step:s", "b = a")))
    assert [(i["step"], i["starts"]) for i in found] == [("s", False), ("s", True)]


def test_consecutive_cells_naming_one_step_all_start_it() -> None:
    found = infos(build_notebook(("step:s", "a = 1"), ("step:s", "b = a")))
    assert [(i["step"], i["starts"]) for i in found] == [("s", True), ("s", True)]


def test_markdown_and_raw_cells_are_described_but_not_editable() -> None:
    nb = build_notebook(md("# t"), ("step:a", "x = 1"))
    nb.cells.append(new_raw_cell("raw text"))
    found = infos(nb)
    assert [(i["type"], i["role"], i["step"], i["editable"]) for i in found] == [
        ("markdown", None, None, False),
        ("code", "step", "a", True),
        ("raw", None, None, False),
    ]


def test_a_broken_notebook_still_describes_every_cell() -> None:
    nb = build_notebook(
        ("step:a", "x = 1"),
        "y = 2",
        md("notes"),
        (["step:b", "limit:gpu:1"], "z = undefined_thing"),
        (["setp:c"], "w = 1"),  # a typo: the tags cannot be read
        "%%step d --gpus\nv = 1",  # a header that cannot be read
    )
    with pytest.raises(NotebookError):
        parse_notebook(nb)
    found = infos(nb, parsed=False)
    assert [brief(i) for i in found] == [
        ("step", "a", True, "tags", True),
        (None, None, False, None, True),  # continuation is only known from a parsed pipeline
        (None, None, False, None, False),
        ("step", "b", True, "tags", True),
        (None, None, False, None, True),  # unreadable: no role, editable to repair it
        (None, None, False, "magic", True),
    ]
    assert found[3]["gpus"] == 1
    assert (found[4]["after"], found[4]["gpus"], found[4]["image"]) == ([], 0, None)


def test_a_cell_without_an_id_has_a_null_id() -> None:
    nb = {"cells": [{"cell_type": "code", "source": ["x = 1"], "metadata": {}}]}
    [info] = cell_infos(nb, None)
    assert info["id"] is None and info["type"] == "code" and info["role"] is None
