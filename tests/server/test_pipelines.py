"""``GET|POST pipeline``: a notebook read as a pipeline, broken or not."""

from __future__ import annotations

import nbformat
from api_client import Api, Write, notebook_node

SALES = (
    ("#md", "# Sales"),
    ("pipeline-parameters", "seed = 7\nrate = 0.5"),
    ("imports", "import math"),
    ("step:load", "data = list(range(seed))"),
    "extra = len(data)",
    (["step:train", "limit:nvidia.com/gpu:1", "retries:2"], "total = sum(data) * rate + extra"),
    (["step:report", "prev:load"], "print('report')"),
    ("pipeline-metrics", "print(total)"),
)


async def test_describe_a_good_notebook(api: Api, write_notebook: Write) -> None:
    path = write_notebook("project/sales.ipynb", *SALES)

    view = (await api.get("pipeline", query={"path": path}, expect=200)).body

    assert view["path"] == "project/sales.ipynb"
    assert view["ok"] is True and view["problems"] == []
    pipeline = view["pipeline"]
    assert pipeline["name"] == "sales"
    assert pipeline["parameters"] == {
        "seed": {"type": "int", "default": 7},
        "rate": {"type": "float", "default": 0.5},
    }
    steps = {s["name"]: s for s in pipeline["steps"]}
    assert [s["name"] for s in pipeline["steps"]] == ["load", "train", "report"]
    assert steps["load"]["cells"] == [3, 4]
    assert steps["load"]["outputs"] == ["data", "extra"]
    assert steps["train"]["inputs"] == {"data": "load", "extra": "load"}
    assert steps["train"]["resources"] == {"nvidia.com/gpu": "1"}
    assert steps["train"]["retries"] == 2
    assert steps["report"]["after"] == ["load"]
    assert pipeline["edges"] == [
        {"source": "load", "target": "train", "variables": ["data", "extra"]},
        {"source": "load", "target": "report", "variables": []},  # an explicit prev: edge
    ]
    assert pipeline["order"] == ["load", "train", "report"]
    assert pipeline["metrics"] == [{"name": "total", "step": "train"}]


async def test_describe_a_broken_notebook(api: Api, write_notebook: Write) -> None:
    path = write_notebook(
        "broken.ipynb", ("step:a", "x = 1"), ("#md", "notes"), ("step:b", "y = undefined_thing + x")
    )

    view = (await api.get("pipeline", query={"path": path}, expect=200)).body

    assert view["ok"] is False and view["pipeline"] is None
    [problem] = view["problems"]
    assert problem["cell_index"] == 2
    assert problem["cell_line"] == "y = undefined_thing + x"
    assert "undefined_thing" in problem["message"]
    assert problem["fix"] and "define 'undefined_thing'" in problem["fix"]
    assert "Fix:" not in problem["message"]
    assert problem["where"] and problem["where"].endswith("cell 2 ('y = undefined_thing + x')")


async def test_a_pipeline_wide_problem_has_no_cell(api: Api, write_notebook: Write) -> None:
    path = write_notebook(
        "reserved.ipynb", ("pipeline-parameters", "kfnb_x = 1"), ("step:a", "y = 1")
    )

    view = (await api.get("pipeline", query={"path": path}, expect=200)).body

    assert view["ok"] is False
    assert view["problems"] == [
        {
            "message": "parameter 'kfnb_x' uses the reserved prefix 'kfnb_'",
            "cell_index": None,
            "cell_line": None,
            "fix": "rename it",
            "where": None,
        }
    ]


async def test_an_unreadable_file_is_a_problem_not_an_error(
    api: Api, jp_root_dir: object, write_notebook: Write
) -> None:
    path = write_notebook("garbled.ipynb", ("step:a", "x = 1"))
    (jp_root_dir / path).write_text("{not json")  # type: ignore[operator]

    view = (await api.get("pipeline", query={"path": path}, expect=200)).body

    assert view["ok"] is False and "not a readable notebook" in view["problems"][0]["message"]


async def test_describe_the_live_model_rather_than_the_file(
    api: Api, write_notebook: Write
) -> None:
    path = write_notebook("live.ipynb", ("step:a", "x = 1"))
    unsaved = notebook_node(
        ("step:a", "x = 1"), ("step:b", "y = x + 1"), (["step:c", "prev:a"], "z = 3")
    )

    saved = (await api.get("pipeline", query={"path": path}, expect=200)).body
    live = (await api.post("pipeline", body={"path": path, "notebook": unsaved}, expect=200)).body

    assert [s["name"] for s in saved["pipeline"]["steps"]] == ["a"]
    assert [s["name"] for s in live["pipeline"]["steps"]] == ["a", "b", "c"]
    assert live["pipeline"]["name"] == "live"  # the name still comes from the path
    assert live["pipeline"]["edges"] == [
        {"source": "a", "target": "b", "variables": ["x"]},
        {"source": "a", "target": "c", "variables": []},
    ]


async def test_a_live_model_of_an_older_nbformat_is_converted(
    api: Api, write_notebook: Write
) -> None:
    path = write_notebook("old.ipynb", ("step:a", "x = 1"))
    v3 = nbformat.convert(notebook_node(("step:a", "x = 1"), ("step:b", "y = x")), 3)

    live = (await api.post("pipeline", body={"path": path, "notebook": v3}, expect=200)).body

    assert [s["name"] for s in live["pipeline"]["steps"]] == ["a", "b"]


async def test_bad_bodies_are_bad_requests(api: Api, write_notebook: Write) -> None:
    path = write_notebook("nb.ipynb", ("step:a", "x = 1"))
    for raw in (b"{not json", b"[1, 2]", b"", b'"text"'):
        reply = await api.post("pipeline", raw=raw, expect=400)
        assert reply.body["message"]
    bad = [
        {"path": path},
        {"path": path, "notebook": []},
        {"notebook": {"cells": []}},
        {"path": path, "notebook": {"cells": {}}},
        {"path": path, "notebook": {"cells": []}, "extra": 1},
    ]
    for body in bad:
        await api.post("pipeline", body=body, expect=400)
    reply = await api.post("pipeline", raw=b"{not json", expect=400)
    assert "JSON" in reply.body["message"]
    await api.get("pipeline", expect=400)  # no path at all
