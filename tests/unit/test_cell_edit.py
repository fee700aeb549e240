"""Writing the tag language: step tags and %%step headers, and the cell tools' one edit."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from nbbuild import build_notebook, md
from nbformat.v4 import new_raw_cell

from kfnb.errors import NotebookError
from kfnb.notebook import parse_notebook
from kfnb.notebook.edit import edit_step
from kfnb.notebook.magic import parse_header, rewrite_header
from kfnb.notebook.tags import is_step_tag, parse_tags, step_tags, write_step_tags


def settings(
    name: str | None, after: list[str] | None = None, gpus: int = 0, image: str | None = None
) -> dict[str, Any]:
    return {"name": name, "after": after or [], "gpus": gpus, "image": image}


def apply(nb: nbformat.NotebookNode, edit: dict[str, Any]) -> nbformat.NotebookNode:
    """The notebook with the edit applied, as the client applies it."""
    cell = nb.cells[edit["index"]]
    cell.source = edit["source"]
    cell.metadata["tags"] = edit["tags"]
    return nb


# -- the tag writer -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tag", "owned"),
    [
        ("step:a", True),
        ("block:a", True),
        ("block:", True),  # Kale's empty block: is a step tag without a name
        ("prev:a", True),
        ("image:python:3.11", True),
        ("limit:nvidia.com/gpu:1", True),
        ("limit:gpu:1", True),
        ("limit:gpus:2", True),
        ("limit:memory:4Gi", False),
        ("limit:cpu:2", False),
        ("step:imports", False),  # a section, not a step
        ("imports", False),
        ("retries:2", False),
        ("hide-input", False),
        (3, False),
    ],
)
def test_which_tags_are_step_tags(tag: object, owned: bool) -> None:
    assert is_step_tag(tag) is owned


def test_step_tags_are_written_in_one_order() -> None:
    assert step_tags("b", ["a", "c", "a"], 2, "python:3.11") == [
        "step:b",
        "prev:a",
        "prev:c",
        "limit:nvidia.com/gpu:2",
        "image:python:3.11",
    ]
    assert step_tags("b") == ["step:b"]


@pytest.mark.parametrize(
    ("tags", "new", "expected"),
    [
        (["hide-input", "step:a", "retries:2"], ["step:b"], ["hide-input", "step:b", "retries:2"]),
        (["hide-input"], ["step:b"], ["step:b", "hide-input"]),
        (
            ["block:a", "limit:gpu:1", "limit:memory:4Gi", "prev:x", "image:i", "remove-cell"],
            ["step:a", "limit:nvidia.com/gpu:2"],
            ["step:a", "limit:nvidia.com/gpu:2", "limit:memory:4Gi", "remove-cell"],
        ),
        (["step:a", "hide-input", 7], [], ["hide-input"]),
    ],
)
def test_step_tags_are_replaced_in_place(
    tags: list[object], new: list[str], expected: list[str]
) -> None:
    assert write_step_tags(tags, new) == expected


# -- the header writer ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "args", "expected"),
    [
        ("%%step a", ("b",), "%%step b"),
        (
            "%%step a --cpu 2 --env A=b --after x",
            ("b", ["x", "y"], 1, None),
            "%%step b --after x y --gpus 1 --cpu 2 --env A=b",
        ),
        (
            "%%step a --prev x --gpus 2 --image old --limit gpu=3 --limit example.com/fpga=1",
            ("a", [], 0, "python:3.11"),
            "%%step a --image python:3.11 --limit example.com/fpga=1",
        ),
        (
            "%%step a --no-cache --label team=ml --label tier=1 --timeout 30m --retries 2",
            ("a",),
            "%%step a --label team=ml --label tier=1 --retries 2 --timeout 30m --no-cache",
        ),
        ("%%step a --env 'MSG=hello world'", ("a",), "%%step a --env 'MSG=hello world'"),
    ],
)
def test_a_header_is_rewritten_with_its_other_options(
    line: str, args: tuple[Any, ...], expected: str
) -> None:
    written = rewrite_header(line, *args)
    assert written == expected
    assert parse_header(written) == parse_header(expected)


def test_a_rewritten_header_reads_as_the_same_step_with_the_new_settings() -> None:
    line = "%%step a --cpu 2 --memory 4Gi --env A=b --toleration k=v:NoSchedule --no-cache"
    before, after = parse_header(line), parse_header(rewrite_header(line, "b", [], 1, "img:1"))
    assert (after.step, after.resources["nvidia.com/gpu"], after.image) == ("b", "1", "img:1")
    after.step, after.image = before.step, before.image
    del after.resources["nvidia.com/gpu"]
    assert after == before


# -- edit_step ------------------------------------------------------------------------------------
def test_renaming_a_tagged_cell_keeps_other_tags() -> None:
    nb = build_notebook(
        ("step:a", "x = 1"),
        (["hide-input", "step:old", "limit:gpu:1", "retries:2"], "y = x"),
    )
    edit = edit_step(nb, 1, settings("b", ["a"], 2, "python:3.11"))
    assert edit == {
        "index": 1,
        "tags": [
            "hide-input",
            "step:b",
            "prev:a",
            "limit:nvidia.com/gpu:2",
            "image:python:3.11",
            "retries:2",
        ],
        "source": "y = x",
    }


def test_naming_an_untagged_cell_adds_step_tags() -> None:
    nb = build_notebook(("step:a", "x = 1"), "y = x")
    edit = edit_step(nb, 1, settings("b"))
    assert (edit["tags"], edit["source"]) == (["step:b"], "y = x")


@pytest.mark.parametrize("alias", ["limit:gpu:1", "limit:gpus:1", "limit:nvidia.com/gpu:1"])
def test_gpu_tags_under_any_name_are_replaced(alias: str) -> None:
    nb = build_notebook((["step:a", alias], "x = 1"))
    assert edit_step(nb, 0, settings("a", gpus=3))["tags"] == ["step:a", "limit:nvidia.com/gpu:3"]
    assert edit_step(nb, 0, settings("a"))["tags"] == ["step:a"]


def test_a_header_cell_gets_its_header_rewritten_and_keeps_its_options() -> None:
    nb = build_notebook(
        ("step:load", "x = 1"),
        (["hide-input", "prev:load"], "%%step train --cpu 2 --env A=b\ny = x\nz = 2"),
    )
    edit = edit_step(nb, 1, settings("fit", ["load"], 1, None))
    assert edit == {
        "index": 1,
        # prev:load would contradict an edit that drops `load` from after: step tags go
        "tags": ["hide-input"],
        "source": "%%step fit --after load --gpus 1 --cpu 2 --env A=b\ny = x\nz = 2",
    }


def test_clearing_a_header_cell_removes_the_header() -> None:
    nb = build_notebook(("step:a", "x = 1"), ("hide-input", "\n%%step b --cpu 2\ny = x"))
    edit = edit_step(nb, 1, settings(None))
    assert edit == {"index": 1, "tags": ["hide-input"], "source": "y = x"}


def test_clearing_a_tagged_cell_removes_its_step_tags() -> None:
    nb = build_notebook(("step:a", "x = 1"), (["step:b", "prev:a", "retries:1"], "y = x"))
    assert edit_step(nb, 1, settings(None))["tags"] == ["retries:1"]


def test_a_cell_whose_step_tags_are_broken_can_be_repaired() -> None:
    nb = build_notebook((["step:bad name", "limit:gpu:half"], "x = 1"))
    assert edit_step(nb, 0, settings("good"))["tags"] == ["step:good"]


def test_a_header_value_is_quoted() -> None:
    nb = build_notebook("%%step a --env 'MSG=hi there'\nx = 1")
    edit = edit_step(nb, 0, settings("b"))
    assert edit["source"] == "%%step b --env 'MSG=hi there'\nx = 1"


ROUND_TRIP = (
    ("imports", "import math"),
    ("step:load", "x = 1"),
    "y = x + 1",
    "%%step train --cpu 2 --env A=b\nz = y * 2",
    md("notes"),
    (["hide-input"], "w = z"),
)


@pytest.mark.parametrize(
    ("index", "edit", "steps"),
    [
        (2, settings("prep", ["load"]), {"load": [1], "prep": [2], "train": [3, 5]}),
        (3, settings("fit", gpus=1), {"load": [1, 2], "fit": [3, 5]}),
        (3, settings(None), {"load": [1, 2, 3, 5]}),
        (
            5,
            settings("report", ["train"], 0, "python:3.11"),
            {"load": [1, 2], "train": [3], "report": [5]},
        ),
        (1, settings(None), {"train": [3, 5]}),  # 1 and 2 now continue the imports cell
    ],
)
def test_the_edited_notebook_parses_into_the_expected_pipeline(
    index: int, edit: dict[str, Any], steps: dict[str, list[int]]
) -> None:
    nb = apply(build_notebook(*ROUND_TRIP), edit_step(build_notebook(*ROUND_TRIP), index, edit))
    pipeline = parse_notebook(nb)
    assert {s.name: [c.index for c in s.cells] for s in pipeline.steps} == steps
    if edit["name"] is not None:
        step = pipeline.step(edit["name"])
        assert step.explicit_after == edit["after"]
        assert step.resources.get("nvidia.com/gpu") == (str(edit["gpus"]) if edit["gpus"] else None)
        assert step.image == edit["image"]
    if index == 3 and edit["name"]:
        assert pipeline.step(edit["name"]).resources["cpu"] == "2"
        assert pipeline.step(edit["name"]).env == {"A": "b"}


# -- refusals ---------------------------------------------------------------------------------
REFUSALS = build_notebook(
    ("step:load", "x = 1"),
    md("# notes"),
    ("imports", "import os"),
    "%%step parameters\nseed = 1",
    ("step:train", "y = x"),
    "z = y",
    ("skip", "print(z)"),
    (["step:other", "skip"], "q = 1"),
)
REFUSALS.cells.append(new_raw_cell("raw"))


@pytest.mark.parametrize(
    ("index", "edit", "message", "fix"),
    [
        (5, settings("bad name"), "invalid step name 'bad name'", "rename it to 'bad_name'"),
        (5, settings("9lives"), "invalid step name '9lives'", "rename it to 'step_9lives'"),
        (5, settings("x" * 64), "at most 63 characters", "rename it to"),
        (5, settings("kfnb"), "'kfnb' is reserved and cannot name a step", "'kfnb_step'"),
        (5, settings("imports"), "'imports' is reserved", "'imports_step'"),
        (5, settings("pipeline-metrics"), "'pipeline-metrics' is reserved", "use another name"),
        (5, settings("skip"), "'skip' is reserved", "use another name"),
        (5, settings("load"), "step 'load' is already defined at cell 0", "its own step name"),
        (0, settings("train"), "step 'train' is already defined at cell 4", "its own step name"),
        (5, settings("eval", ["lod"]), "after: 'lod' names no step defined above", "'load'?"),
        (0, settings("load", ["train"]), "'train' names no step defined above", "none yet"),
        (5, settings("eval", ["eval"]), "step 'eval' cannot run after itself", "remove 'eval'"),
        (5, settings("eval", gpus=-1), "GPUs must be a whole number, 0 or more", "0 for none"),
        (5, settings("eval", gpus=True), "GPUs must be a whole number", "0 for none"),  # type: ignore[arg-type]
        (
            5,
            settings("eval", image="my image"),
            "tag 'image:my image' has no valid image",
            "image:",
        ),
        (
            5,
            settings(None, ["load"]),
            "belong to a step, and this edit names none",
            "name the step",
        ),
        (5, settings(None, gpus=1), "belong to a step", "clear after, GPUs and image"),
        (1, settings("a"), "this is a markdown cell; only code cells run in steps", "a code cell"),
        (8, settings("a"), "this is a raw cell", "pick a code cell"),
        (2, settings("a"), "this is the imports cell, not a step cell", "remove its 'imports' tag"),
        (3, settings("a"), "this is the parameters cell", "'%%step parameters', to name a step"),
        (6, settings("a"), "this is a skipped cell, not a step cell", "remove its 'skip' tag"),
        (9, settings("a"), "the notebook has no cell 9: it has 9 cells", "from 0 to 8"),
        (-1, settings("a"), "the notebook has no cell -1", "from 0 to 8"),
    ],
)
def test_refusals_say_why_and_how_to_fix(
    index: int, edit: dict[str, Any], message: str, fix: str
) -> None:
    with pytest.raises(NotebookError) as caught:
        edit_step(REFUSALS, index, edit, path="nb.ipynb")
    err = caught.value
    assert message in err.message
    assert err.fix and fix in err.fix
    assert "Fix:" not in err.message
    assert err.path == "nb.ipynb"
    if 0 <= index < len(REFUSALS.cells):
        assert err.cell_index == index
        assert err.where and err.where.startswith(f"nb.ipynb, cell {index}")


def test_a_header_cell_refuses_a_bad_image_in_its_own_words() -> None:
    nb = build_notebook("%%step a\nx = 1")
    with pytest.raises(NotebookError, match="'--image a b' has no valid image"):
        edit_step(nb, 0, settings("a", image="a b"))


def test_other_tags_that_still_break_the_cell_are_reported() -> None:
    nb = build_notebook((["step:a", "setp:a"], "x = 1"))
    with pytest.raises(NotebookError) as caught:
        edit_step(nb, 0, settings("b"))
    assert caught.value.message == "unknown tag 'setp:a'"
    assert caught.value.fix == "did you mean 'step:a'?"


def test_other_tags_that_keep_a_role_are_reported() -> None:
    nb = build_notebook((["step:a", "skip"], "x = 1"))  # unreadable, so editable
    with pytest.raises(NotebookError) as caught:
        edit_step(nb, 0, settings(None))
    assert "it would declare the skip section" in caught.value.message
    assert caught.value.fix and "remove the cell's other kfnb tags" in caught.value.fix


def test_an_unreadable_header_can_be_cleared_but_not_renamed() -> None:
    nb = build_notebook("%%step a --after\nx = 1")
    assert edit_step(nb, 0, settings(None))["source"] == "x = 1"
    with pytest.raises(NotebookError) as caught:
        edit_step(nb, 0, settings("b"))
    assert "bad %%step line" in caught.value.message
    assert caught.value.fix and "usage: %%step" in caught.value.fix


def test_every_answer_parses() -> None:
    nb = build_notebook(("step:a", "x = 1"), (["step:b", "label:team:ml"], "y = x"))
    edit = edit_step(nb, 1, settings("c", ["a"], 4, "reg.io/img:1"))
    d = parse_tags(edit["tags"])
    assert (d.role, d.step, d.prev, d.resources, d.image, d.labels) == (
        "step",
        "c",
        ["a"],
        {"nvidia.com/gpu": "4"},
        "reg.io/img:1",
        {"team": "ml"},
    )
