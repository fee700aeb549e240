"""What a run answers over REST comes from its record: the pipeline it ran (not the notebook as
it is now), its place in a tree of runs, and its logs paged by the core's ``RunView``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from api_client import Api, Write, notebook_node

from kfnb.server_ext.base import server_store

TWO = (
    ("pipeline-parameters", "n = 2"),
    ("step:load", "xs = list(range(n))"),
    ("step:total", "total = sum(xs)"),
)
#: the same notebook after an edit: `total` renamed `sum_up`, a step `report` added after it
EDITED = (
    ("pipeline-parameters", "n = 2"),
    ("step:load", "xs = list(range(n))"),
    ("step:sum_up", "total = sum(xs)"),
    ("step:report", "print(total)"),
)
TEXT = "é€😀"


def char_length(lead: int) -> int:
    """Bytes of the UTF-8 character whose first byte is ``lead``."""
    return 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def shape(pipeline: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    steps = [s["name"] for s in pipeline["steps"]]
    edges = [(e["source"], e["target"], e["variables"]) for e in pipeline["edges"]]
    return steps, edges


async def test_a_run_keeps_the_pipeline_it_ran_after_the_notebook_changes(
    api: Api, write_notebook: Write, jp_root_dir: Path
) -> None:
    path = write_notebook("pipe.ipynb", *TWO)
    started = (await api.post("runs", body={"path": path}, expect=201)).body
    ran = (["load", "total"], [("load", "total", ["xs"])])
    assert shape(started["pipeline"]) == ran
    done = await api.wait_run(started["id"])
    assert done["status"] == "SUCCEEDED", done

    nbformat.write(notebook_node(*EDITED), jp_root_dir / path)  # edited on disk after the run
    now = (await api.get("pipeline", query={"path": path}, expect=200)).body["pipeline"]
    assert shape(now)[0] == ["load", "sum_up", "report"]

    record = (await api.get("runs/{id}", path={"id": started["id"]}, expect=200)).body
    assert shape(record["pipeline"]) == ran
    assert record["pipeline"]["order"] == ["load", "total"]
    assert record["pipeline"]["parameters"] == {"n": {"type": "int", "default": 2}}
    assert "pipeline" not in record["spec"]  # given once, apart from the rest of the spec
    listed = (await api.get("runs", query={"notebook": path}, expect=200)).body["runs"]
    assert [shape(r["pipeline"]) for r in listed] == [ran]


async def test_runs_form_trees_filtered_by_kind_parent_and_roots(
    api: Api, jp_serverapp: Any
) -> None:
    store = server_store(jp_serverapp.web_app.settings)
    common: dict[str, Any] = {"backend": "local", "notebook": None, "notebook_hash": None}
    sweep = store.create_run(kind="batch", name="sweep", params={}, **common)
    kids = [
        store.create_run(
            kind="pipeline", name=f"n={n}", params={"n": n}, parent_id=sweep.id, **common
        )
        for n in (1, 2)
    ]
    alone = store.create_run(kind="pipeline", name="alone", params={}, **common)

    record = (await api.get("runs/{id}", path={"id": sweep.id}, expect=200)).body
    assert record["kind"] == "batch" and record["child_count"] == 2
    assert record["pipeline"] is None and record["spec"] is None  # nothing stored: null

    children = (await api.get("runs", query={"parent": sweep.id[:-1]}, expect=200)).body
    assert children["total"] == 2
    assert {r["id"] for r in children["runs"]} == {k.id for k in kids}
    assert {r["parent_id"] for r in children["runs"]} == {sweep.id}
    roots = (await api.get("runs", query={"roots": 1}, expect=200)).body
    assert [r["id"] for r in roots["runs"]] == [alone.id, sweep.id]
    batches = (await api.get("runs", query={"kind": "batch"}, expect=200)).body
    assert [r["id"] for r in batches["runs"]] == [sweep.id]
    everything = (await api.get("runs", expect=200)).body
    assert everything["total"] == 4

    await api.get("runs", query={"kind": "sweep"}, expect=400)
    await api.get("runs", query={"roots": "maybe"}, expect=400)
    await api.get("runs", query={"roots": 1, "parent": sweep.id}, expect=400)
    await api.get("runs", query={"parent": "19990101-000000-zzzz"}, expect=404)


async def test_log_pages_never_cut_a_character(api: Api, write_notebook: Write) -> None:
    """Pages end where a UTF-8 character ends, whatever the limit cuts: 2, 3 and 4 bytes."""
    path = write_notebook("chars.ipynb", ("step:say", f"print({TEXT!r} * 3)"))
    run = await api.wait_run((await api.post("runs", body={"path": path}, expect=201)).body["id"])
    assert run["status"] == "SUCCEEDED", run
    raw = Path(run["steps"][0]["log"]).read_bytes()
    ids = {"id": run["id"], "step": "say"}
    template = "runs/{id}/steps/{step}/log"
    whole = (await api.get(template, path=ids, expect=200)).body
    assert TEXT * 3 in whole["text"] and whole["offset"] == len(raw)

    starts = {i for i in range(len(raw)) if raw[i] & 0xC0 != 0x80}  # where characters begin
    cut: set[int] = set()  # the lengths (in bytes) of the characters a limit fell inside
    for limit in range(4, 10):
        pages, offset = [], 0
        while True:
            query = {"offset": offset, "limit": limit}
            page = (await api.get(template, path=ids, query=query, expect=200)).body
            end = offset + limit
            if end < len(raw) and end not in starts:  # the limit ends inside a character
                cut.add(char_length(raw[max(b for b in starts if b < end)]))
            assert page["offset"] in starts | {len(raw)}, (limit, page)
            assert offset < page["offset"] or page["done"]
            pages.append(page["text"])
            offset = page["offset"]
            if page["done"]:
                break
        assert "".join(pages) == whole["text"], limit
    assert cut >= {2, 3, 4}  # the limits did fall inside each kind of character
    assert "\ufffd" not in whole["text"]
