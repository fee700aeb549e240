"""Runs started over REST, with real kernels: start, follow, read, page, copy, cancel, list."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import nbformat
import pytest
from api_client import Api, Write

import kfnb
from kfnb.backends import BackendError

PIPE = (
    ("pipeline-parameters", "n = 3\nscale = 1.5"),
    ("step:make", "xs = list(range(n))\nprint('made', xs)\nprint('é' * 40)"),
    (
        "step:total",
        "import kfnb\ntotal = sum(xs) * scale\n"
        "for i in range(3):\n    kfnb.log_metric('loss', 1.0 / (i + 1), step=i)\n"
        "print('total is', total)",
    ),
    ("pipeline-metrics", "print(total)"),
)
SLOW = (("step:slow", "import time\ntime.sleep(30)"), ("step:after", "x = 1"))
FAILS = (("step:boom", "z = 1\nraise RuntimeError('no luck')"), ("step:later", "y = z + 2"))


async def start(api: Api, path: str, **body: Any) -> dict[str, Any]:
    run: dict[str, Any] = (await api.post("runs", body={"path": path, **body}, expect=201)).body
    return run


async def test_a_run_started_over_rest_completes(
    api: Api, write_notebook: Write, jp_root_dir: Path, jp_base_url: str
) -> None:
    path = write_notebook("project/pipe.ipynb", *PIPE)

    reply = await api.post("runs", body={"path": path, "params": {"n": 4}}, expect=201)
    run = reply.body
    assert reply.headers["Location"] == f"{jp_base_url}kfnb/api/runs/{run['id']}"
    assert run["status"] in ("PENDING", "RUNNING")
    assert run["notebook_path"] == "project/pipe.ipynb"
    assert run["notebook"] == str((jp_root_dir / path).resolve())
    assert run["params"] == {"n": 4, "scale": 1.5}
    assert [s["name"] for s in run["steps"]] == ["make", "total"]

    done = await api.wait_run(run["id"][:-2])  # a unique prefix names the run too
    assert done["id"] == run["id"]
    assert done["status"] == "SUCCEEDED", done
    assert [s["status"] for s in done["steps"]] == ["SUCCEEDED", "SUCCEEDED"]
    assert done["metrics"]["total"] == 9.0

    metrics = (await api.get("runs/{id}/metrics", path={"id": run["id"]}, expect=200)).body
    losses = [(m["step"], m["value"]) for m in metrics["metrics"] if m["name"] == "loss"]
    assert losses == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    assert {"name": "total", "value": 9.0} in [
        {"name": m["name"], "value": m["value"]} for m in metrics["metrics"]
    ]

    # the whole log at once, then the same log in pages of 7 bytes
    log = "runs/{id}/steps/{step}/log"
    ids = {"id": run["id"], "step": "make"}
    whole = (await api.get(log, path=ids, expect=200)).body
    assert "made [0, 1, 2, 3]" in whole["text"] and whole["done"] is True
    assert whole["offset"] == os.path.getsize(done["steps"][0]["log"])
    pages, offset = [], 0
    while True:
        page = (await api.get(log, path=ids, query={"offset": offset, "limit": 7}, expect=200)).body
        assert page["offset"] >= offset and page["offset"] - offset <= 7
        pages.append(page["text"])
        offset = page["offset"]
        if page["done"]:
            break
    assert "".join(pages) == whole["text"]  # no character was cut between pages
    assert "\ufffd" not in whole["text"]
    tail = (await api.get(log, path=ids, query={"offset": offset}, expect=200)).body
    assert tail == {"text": "", "offset": offset, "done": True}

    # a read-only copy of the executed notebook, inside the root, that Jupyter can open
    copy = (await api.post("runs/{id}/steps/{step}/notebook", path=ids, expect=201)).body
    assert copy["path"] == f"kfnb-runs/{run['id']}/make.ipynb"
    target = jp_root_dir / copy["path"]
    nb = nbformat.read(target, as_version=4)
    nbformat.validate(nb)
    assert any("made [0, 1, 2, 3]" in str(c.get("outputs")) for c in nb.cells)
    assert not target.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    again = (await api.post("runs/{id}/steps/{step}/notebook", path=ids, expect=201)).body
    assert again == copy  # copying again replaces the read-only copy
    contents = await api.client.fetch(
        f"{jp_base_url}api/contents/{copy['path']}", headers=api.auth, raise_error=False
    )
    assert contents.code == 200, contents.body

    # the run has ended: nothing to cancel
    conflict = await api.post("runs/{id}/cancel", path={"id": run["id"]}, expect=409)
    assert "already ended (SUCCEEDED)" in conflict.body["message"]


async def test_unknown_runs_and_steps_are_not_found(api: Api, write_notebook: Write) -> None:
    path = write_notebook("one.ipynb", ("step:only", "x = 1"))
    run = await start(api, path)
    await api.wait_run(run["id"])
    missing = {"id": "19990101-000000-zzzz"}
    await api.get("runs/{id}", path=missing, expect=404)
    await api.get("runs/{id}/metrics", path=missing, expect=404)
    await api.post("runs/{id}/cancel", path=missing, expect=404)
    for template, verb in (
        ("runs/{id}/steps/{step}/log", "GET"),
        ("runs/{id}/steps/{step}/notebook", "POST"),
    ):
        await api.call(verb, template, path={**missing, "step": "only"}, expect=404)
        reply = await api.call(verb, template, path={"id": run["id"], "step": "onyl"}, expect=404)
        assert "did you mean 'only'" in reply.body["message"]
    await api.get(
        "runs/{id}/steps/{step}/log",
        path={"id": run["id"], "step": "only"},
        query={"offset": -1},
        expect=400,
    )
    await api.get(
        "runs/{id}/steps/{step}/log",
        path={"id": run["id"], "step": "only"},
        query={"limit": "lots"},
        expect=400,
    )


async def test_list_filters_and_pages(api: Api, write_notebook: Write) -> None:
    one = write_notebook("a/one.ipynb", ("step:only", "x = 1"))
    fails = write_notebook("b/fails.ipynb", *FAILS)
    first = await start(api, one)
    await api.wait_run(first["id"])
    failed = await start(api, fails)
    await api.wait_run(failed["id"])
    second = await start(api, one, options={"cache": False})
    await api.wait_run(second["id"])

    everything = (await api.get("runs", expect=200)).body
    assert everything["total"] == 3
    assert [r["id"] for r in everything["runs"]] == [second["id"], failed["id"], first["id"]]

    mine = (await api.get("runs", query={"notebook": one}, expect=200)).body
    assert mine["total"] == 2 and {r["notebook_path"] for r in mine["runs"]} == {one}
    page = (
        await api.get("runs", query={"notebook": one, "limit": 1, "offset": 1}, expect=200)
    ).body
    assert page["total"] == 2 and [r["id"] for r in page["runs"]] == [first["id"]]
    beyond = (await api.get("runs", query={"limit": 5, "offset": 10}, expect=200)).body
    assert beyond == {"runs": [], "total": 3}

    bad = (await api.get("runs", query={"status": "FAILED"}, expect=200)).body
    assert [r["id"] for r in bad["runs"]] == [failed["id"]]
    steps = {s["name"]: s for s in bad["runs"][0]["steps"]}
    assert steps["boom"]["status"] == "FAILED" and "no luck" in steps["boom"]["error"]["message"]
    assert steps["later"]["status"] == "SKIPPED"
    both = (
        await api.get("runs", query=[("status", "FAILED"), ("status", "SUCCEEDED")], expect=200)
    ).body
    assert both["total"] == 3
    commas = (await api.get("runs", query={"status": "failed,running"}, expect=200)).body
    assert commas["total"] == 1
    none = (await api.get("runs", query={"status": "RUNNING", "notebook": one}, expect=200)).body
    assert none == {"runs": [], "total": 0}
    nothing = (await api.get("runs", query={"notebook": "never/ran.ipynb"}, expect=200)).body
    assert nothing["total"] == 0

    await api.get("runs", query={"status": "DONE"}, expect=400)
    await api.get("runs", query={"limit": 0}, expect=400)
    await api.get("runs", query={"offset": "x"}, expect=400)

    # a step that never ran has no executed notebook
    reply = await api.post(
        "runs/{id}/steps/{step}/notebook", path={"id": failed["id"], "step": "later"}, expect=409
    )
    assert "no executed notebook" in reply.body["message"]
    # the failed step has one, up to the failing cell
    await api.post(
        "runs/{id}/steps/{step}/notebook", path={"id": failed["id"], "step": "boom"}, expect=201
    )


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"n": "many"}, ["'n'", "int", "'many'"]),
        ({"n": 2.5}, ["'n'", "int", "float"]),
        ({"nn": 1}, ["no parameter 'nn'", "fix: did you mean 'n'"]),
        ({"scale": [1]}, ["'scale'", "float"]),
    ],
)
async def test_bad_parameter_values_are_bad_requests(
    api: Api, write_notebook: Write, params: dict[str, Any], words: list[str]
) -> None:
    path = write_notebook("pipe.ipynb", *PIPE)
    reply = await api.post("runs", body={"path": path, "params": params}, expect=400)
    said = f"{reply.body['message']} fix: {reply.body['fix']}"
    for word in words:
        assert word in said, reply.body
    assert (await api.get("runs", expect=200)).body["total"] == 0


async def test_param_strings_are_read_like_the_cli(api: Api, write_notebook: Write) -> None:
    path = write_notebook("pipe.ipynb", *PIPE)
    run = await start(
        api, path, param_strings={"n": "2", "scale": "2"}, options={"max_parallel": 1}
    )
    assert run["params"] == {"n": 2, "scale": 2.0}
    done = await api.wait_run(run["id"])
    assert done["status"] == "SUCCEEDED" and done["metrics"]["total"] == 2.0


async def test_bad_run_requests(api: Api, write_notebook: Write) -> None:
    path = write_notebook("pipe.ipynb", *PIPE)
    broken = write_notebook("broken.ipynb", ("step:a", "y = nowhere"))
    reply = await api.post("runs", body={"path": path, "backend": "nope"}, expect=400)
    assert "unknown backend 'nope'" in reply.body["message"]
    reply = await api.post("runs", body={"path": broken}, expect=400)
    assert "nowhere" in reply.body["message"]
    for body in (
        {"path": path, "options": {"max_parallel": "lots"}},
        {"path": path, "options": {"cache": "maybe"}},
        {"path": path, "options": [1]},
        {"path": path, "params": [1]},
        {"path": path, "params": {"n": "2"}},  # a text for an int goes in param_strings
        {"path": path, "param_strings": {"n": 2}},
        {"path": path, "param_strings": {"n": "two"}},
        {"path": path, "backend": 3},
        {"path": path, "colour": "red"},
        {},
    ):
        await api.post("runs", body=body, expect=400)
    moved = await api.post("runs", body={"path": path, "cache": False}, expect=400)
    assert "cache" in moved.body["message"] and '"options"' in moved.body["fix"]
    reply = await api.post("runs", raw=b'{"path": ', expect=400)
    assert "JSON" in reply.body["message"]
    assert (await api.get("runs", expect=200)).body["total"] == 0


async def test_cancel_a_running_run(api: Api, write_notebook: Write) -> None:
    path = write_notebook("slow.ipynb", *SLOW)
    run = await start(api, path)
    for _ in range(600):  # until the sleeping step runs in its kernel
        record = (await api.get("runs/{id}", path={"id": run["id"]}, expect=200)).body
        if record["steps"][0]["status"] == "RUNNING":
            break
        await asyncio.sleep(0.05)
    assert record["steps"][0]["status"] == "RUNNING", record

    reply = await api.post("runs/{id}/cancel", path={"id": run["id"]}, expect=202)
    assert reply.body["status"] in ("CANCELING", "CANCELED")

    done = await api.wait_run(run["id"], timeout=20)  # well before the 30 s sleep ends
    assert done["status"] == "CANCELED"
    assert [s["status"] for s in done["steps"]] == ["CANCELED", "CANCELED"]
    await api.post("runs/{id}/cancel", path={"id": run["id"]}, expect=409)


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": {"kfnb": True, "jupyter_server_terminals": False},
                "allow_unauthenticated_access": False,
            },
            "KfnbServerSettings": {"pool_size": 1, "refresh_interval": 0},
        }
    ],
)
async def test_runs_take_their_kernels_from_the_servers_warm_pool(
    api: Api, write_notebook: Write
) -> None:
    path = write_notebook("pipe.ipynb", *PIPE)
    done = await api.wait_run((await start(api, path))["id"])
    assert done["status"] == "SUCCEEDED", done
    [pool] = (await api.get("pool", expect=200)).body
    assert pool["size"] == 1 and pool["started"] >= 2  # the steps' kernels came from it


async def test_an_unknown_option_is_the_error_the_cli_and_python_give(
    api: Api, write_notebook: Write, tmp_path: Path
) -> None:
    """REST does not drop an option it does not know: the backend's own ``BackendError``."""
    path = write_notebook("pipe.ipynb", *PIPE)
    reply = await api.post("runs", body={"path": path, "options": {"max_paralel": 2}}, expect=400)
    with pytest.raises(BackendError) as caught:
        kfnb.run(tmp_path / "unused.ipynb", backend="local", max_paralel=2)
    assert reply.body == {"code": 400, **caught.value.to_dict()}
    assert "'max_paralel'" in reply.body["message"] and "max_parallel" in reply.body["fix"]
    assert (await api.get("runs", expect=200)).body["total"] == 0


async def test_options_reach_the_backend(api: Api, write_notebook: Write) -> None:
    """``options.cache`` false: the second run of a notebook runs its steps again."""
    path = write_notebook("one.ipynb", ("step:only", "x = 1"))
    first = await api.wait_run((await start(api, path))["id"])
    cached = await api.wait_run((await start(api, path))["id"])
    fresh = await api.wait_run((await start(api, path, options={"cache": False}))["id"])
    assert [s["status"] for s in first["steps"]] == ["SUCCEEDED"]
    assert [s["status"] for s in cached["steps"]] == ["CACHED"]
    assert [s["status"] for s in fresh["steps"]] == ["SUCCEEDED"]
