"""``POST cells/step`` and ``PipelineView.cells``: the server reads and writes the tag language
for the extension, which never parses tags itself. Every answer is checked against the contract
by ``api`` (``StepEdit``, ``PipelineView``, ``Error``)."""

from __future__ import annotations

from typing import Any

import pytest
from api_client import Api, Write, notebook_node

CELLS = (
    ("#md", "# Sales"),
    ("imports", "import math"),
    (["hide-input", "step:load"], "data = [1, 2]"),
    "extra = len(data)",
    "%%step train --after load --gpus 1 --cpu 2 --env A=b\ntotal = sum(data) + extra",
)


def step(
    name: str | None, after: list[str] | None = None, gpus: int = 0, image: str | None = None
) -> dict[str, Any]:
    return {"name": name, "after": after or [], "gpus": gpus, "image": image}


async def edit(api: Api, path: str, index: int, settings: Any, expect: int) -> Any:
    body = {"path": path, "notebook": notebook_node(*CELLS), "index": index, "step": settings}
    return (await api.post("cells/step", body=body, expect=expect)).body


async def test_a_view_describes_every_cell(api: Api, write_notebook: Write) -> None:
    path = write_notebook("sales.ipynb", *CELLS)

    saved = (await api.get("pipeline", query={"path": path}, expect=200)).body
    live = notebook_node(*CELLS, ("step:report", "print(total)"))
    posted = (await api.post("pipeline", body={"path": path, "notebook": live}, expect=200)).body

    rows = [
        (c["index"], c["type"], c["role"], c["step"], c["starts"], c["declared_by"], c["editable"])
        for c in saved["cells"]
    ]
    assert rows == [
        (0, "markdown", None, None, False, None, False),
        (1, "code", "imports", None, False, "tags", False),
        (2, "code", "step", "load", True, "tags", True),
        (3, "code", None, "load", False, None, True),
        (4, "code", "step", "train", True, "magic", True),
    ]
    assert (saved["cells"][4]["after"], saved["cells"][4]["gpus"]) == (["load"], 1)
    assert [c["step"] for c in posted["cells"]] == [None, None, "load", "load", "train", "report"]
    assert saved["pipeline"]["layout"]["nodes"]  # the pipeline comes with its layout


async def test_a_broken_notebook_still_describes_its_cells(api: Api, write_notebook: Write) -> None:
    path = write_notebook("broken.ipynb", ("step:a", "x = 1"), (["setp:b"], "y = x"))

    view = (await api.get("pipeline", query={"path": path}, expect=200)).body

    assert view["ok"] is False and view["pipeline"] is None
    assert [(c["step"], c["role"], c["editable"]) for c in view["cells"]] == [
        ("a", "step", True),
        (None, None, True),
    ]


async def test_an_unreadable_file_has_no_cells(
    api: Api, jp_root_dir: Any, write_notebook: Write
) -> None:
    path = write_notebook("garbled.ipynb", ("step:a", "x = 1"))
    (jp_root_dir / path).write_text("{not json")

    view = (await api.get("pipeline", query={"path": path}, expect=200)).body

    assert view["ok"] is False and view["cells"] == []


async def test_renaming_a_tagged_cell(api: Api) -> None:
    body = await edit(api, "sales.ipynb", 3, step("prep", ["load"], 2, "python:3.11"), 200)
    assert body == {
        "index": 3,
        "tags": ["step:prep", "prev:load", "limit:nvidia.com/gpu:2", "image:python:3.11"],
        "source": "extra = len(data)",
    }
    body = await edit(api, "sales.ipynb", 2, step("ingest"), 200)
    assert body["tags"] == ["hide-input", "step:ingest"]


async def test_editing_a_header_cell_keeps_its_options(api: Api) -> None:
    body = await edit(api, "unsaved/new.ipynb", 4, step("fit", [], 0, "reg.io/fit:1"), 200)
    assert body["source"] == (
        "%%step fit --cpu 2 --image reg.io/fit:1 --env A=b\ntotal = sum(data) + extra"
    )
    cleared = await edit(api, "unsaved/new.ipynb", 4, step(None), 200)
    assert cleared == {"index": 4, "tags": [], "source": "total = sum(data) + extra"}


async def test_a_refused_edit_names_the_cell_and_the_fix(api: Api) -> None:
    body = await edit(api, "sales.ipynb", 3, step("train"), 400)
    assert body == {
        "code": 400,
        "message": "step 'train' is already defined at cell 4",
        "fix": "give this cell its own step name",
        "where": "sales.ipynb, cell 3 ('extra = len(data)')",
        "cell_index": 3,
        "cell_line": "extra = len(data)",
    }
    body = await edit(api, "sales.ipynb", 3, step("kfnb"), 400)
    assert body["message"] == "'kfnb' is reserved and cannot name a step"
    assert body["fix"] == "use another name, such as 'kfnb_step'"
    body = await edit(api, "sales.ipynb", 1, step("a"), 400)
    assert body["message"] == "this is the imports cell, not a step cell"
    body = await edit(api, "sales.ipynb", 0, step("a"), 400)
    assert body["message"] == "this is a markdown cell; only code cells run in steps"
    body = await edit(api, "sales.ipynb", 9, step("a"), 400)
    assert body["message"] == "the notebook has no cell 9: it has 5 cells"
    assert body["cell_index"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"path": "nb.ipynb", "notebook": {"cells": []}, "index": 0, "step": step("a"), "x": 1},
        {"path": "nb.ipynb", "notebook": [], "index": 0, "step": step("a")},
        {"path": "nb.ipynb", "notebook": {"cells": []}, "index": 0},
        {"path": "nb.ipynb", "notebook": {"cells": []}, "index": 0, "step": {"name": "a"}},
        {"path": "nb.ipynb", "notebook": {"cells": []}, "index": 0, "step": {**step("a"), "y": 1}},
        {"path": "nb.txt", "notebook": {"cells": []}, "index": 0, "step": step("a")},
        {"notebook": {"cells": []}, "index": 0, "step": step("a")},
        {"path": "nb.ipynb", "notebook": {"cells": {}}, "index": 0, "step": step("a")},
    ],
)
async def test_bad_bodies_are_bad_requests(api: Api, body: dict[str, Any]) -> None:
    reply = await api.post("cells/step", body=body, expect=400)
    assert reply.body["message"]


@pytest.mark.parametrize(
    ("index", "settings", "message"),
    [
        ("2", step("a"), "the notebook has no cell '2'"),
        (True, step("a"), "the notebook has no cell True"),
        (3, {**step("a"), "gpus": 1.5}, "GPUs must be a whole number, 0 or more, not 1.5"),
        (3, {**step("a"), "gpus": "1"}, "GPUs must be a whole number"),
        (3, {**step("a"), "after": "load"}, "after must be a list of step names"),
        (3, {**step("a"), "name": 7}, "the step name must be text or null"),
        (3, {**step("a"), "image": 7}, "the image must be text or null"),
    ],
)
async def test_mistyped_settings_are_bad_requests(
    api: Api, index: Any, settings: dict[str, Any], message: str
) -> None:
    body = {"path": "nb.ipynb", "notebook": notebook_node(*CELLS), "index": index, "step": settings}
    reply = await api.post("cells/step", body=body, expect=400)
    assert message in reply.body["message"]


async def test_a_path_outside_the_root_is_not_found(api: Api) -> None:
    body = {"path": "../x.ipynb", "notebook": notebook_node(*CELLS), "index": 3, "step": step("a")}
    await api.post("cells/step", body=body, expect=404)
