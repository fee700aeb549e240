"""Tuning studies over REST, with real kernels: start one, follow it to its end, read its
trials, best trial and plots, give it more trials, prune, stop; the requests it refuses."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from api_client import Api, Write

from kfnb.tracking import Store

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED"}

#: `prep` reads no tuned parameter (computed once, then cached); `fit` logs the objective
#: `loss` at each of `n` steps, sleeping `pause * x` seconds after each.
TUNED = (
    ("pipeline-parameters", "x = 0.5\nn = 3\npause = 0.0"),
    ("step:prep", "base = 1.0"),
    (
        "step:fit",
        "import time\nimport kfnb\n"
        "for i in range(n):\n"
        "    kfnb.log_metric('loss', (x - 0.3) ** 2 + base / (i + 1), step=i)\n"
        "    time.sleep(pause * x)\n"
        "loss = (x - 0.3) ** 2",
    ),
    ("pipeline-metrics", "print(loss)"),
)
SLOW = (
    ("pipeline-parameters", "x = 0.5"),
    ("step:slow", "import time\ntime.sleep(120)\nloss = x"),
    ("pipeline-metrics", "print(loss)"),
)


def loss(x: float) -> float:
    return (x - 0.3) ** 2


async def start_study(api: Api, path: str, **body: Any) -> dict[str, Any]:
    study: dict[str, Any] = (
        await api.post("studies", body={"notebook": path, **body}, expect=201)
    ).body
    return study


async def wait_study(
    api: Api, study_id: str, done: Any = None, timeout: float = 120
) -> dict[str, Any]:
    """GET studies/{id} until ``done(view)`` (default: the study ended)."""
    check = done or (lambda v: v["status"] in TERMINAL)
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = (
            await api.get("studies/{id}", path={"id": study_id}, expect=200)
        ).body
        if check(view):
            return view
        assert time.monotonic() < deadline, f"study {study_id}: {view['status']} {view['counts']}"
        await asyncio.sleep(0.2)


def plot_cache(app: Any) -> Any:
    return app.web_app.settings["kfnb_study_plots"]


async def test_a_study_started_over_rest_runs_in_the_server_and_shows_its_trials(
    api: Api,
    write_notebook: Write,
    jp_root_dir: Path,
    jp_base_url: str,
    jp_serverapp: Any,
    tmp_path: Path,
) -> None:
    path = write_notebook("tune/tiny.ipynb", *TUNED)
    reply = await api.post(
        "studies",
        body={
            "notebook": path,
            "space": {"x": {"float": [0.0, 1.0]}},
            "objective": "loss",
            "trials": 2,
            "parallel": 2,
            "algorithm": "random",
            "seed": 7,
            "params": {"n": 2},
            "param_strings": {"pause": "0.5"},
        },
        expect=201,
    )
    run = reply.body
    assert reply.headers["Location"] == f"{jp_base_url}kfnb/api/studies/{run['id']}"
    assert run["kind"] == "tune" and run["backend"] == "local"
    assert run["status"] in ("PENDING", "RUNNING")
    assert run["notebook_path"] == path
    assert run["notebook"] == str((jp_root_dir / path).resolve())
    # its runner is a thread of the server (this process), not a process of its own
    store = Store(tmp_path / "kfnb-home")
    assert store.get_run(run["id"]).runner_pid == os.getpid()

    # one more trial while it runs: its runner reads the budget from the store
    more = await api.post("studies/{id}/trials", path={"id": run["id"]}, body={"add": 1})
    assert more.status == 200, more.text
    assert more.body["study"]["trials"] == 3 and more.body["status"] in ("PENDING", "RUNNING")

    view = await wait_study(api, run["id"])
    assert view["status"] == "SUCCEEDED", view
    assert view["id"] == run["id"] and view["notebook_path"] == path
    assert view["counts"] == {
        "PENDING": 0,
        "RUNNING": 0,
        "SUCCEEDED": 3,
        "PRUNED": 0,
        "FAILED": 0,
        "CANCELED": 0,
    }
    study = view["study"]
    assert study["objective"] == "loss" and study["direction"] == "minimize"
    assert study["trials"] == 3 and study["parallel"] == 2 and study["algorithm"] == "random"
    assert study["space"] == {"x": {"float": [0.0, 1.0]}}
    assert study["fixed"] == {"n": 2, "pause": 0.5}
    trials = view["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    for trial in trials:  # each trial ran the notebook with its own x
        assert trial["status"] == "SUCCEEDED" and trial["error"] is None
        x = trial["params"]["x"]
        assert trial["value"] == pytest.approx(loss(x))
        assert [s for s, _ in trial["intermediate"]] == [0, 1]
        assert trial["duration"] is not None and trial["duration"] > 0
        pipeline = (await api.get("runs/{id}", path={"id": trial["run"]}, expect=200)).body
        assert pipeline["kind"] == "pipeline" and pipeline["parent_id"] == trial["id"]
        assert pipeline["params"] == {"x": x, "n": 2, "pause": 0.5}
    assert len({t["params"]["x"] for t in trials}) == 3
    best = min(trials, key=lambda t: t["value"])
    assert view["best"] == best

    plots = view["plots"]
    for kind in ("history", "parallel"):
        assert plots[kind].startswith("<svg") and plots[kind].rstrip().endswith("</svg>")
        assert f"kfnb-study-{kind}" in plots[kind]
    assert 'id="kfnb-history-trial-2-succeeded"' in plots["history"]
    assert f'id="kfnb-parallel-trial-{best["number"]}-succeeded-best"' in plots["parallel"]

    # a panel reading the study again does not have its plots drawn again
    cache = plot_cache(jp_serverapp)
    drawn = cache.drawn
    again = (await api.get("studies/{id}", path={"id": run["id"]}, expect=200)).body
    assert again["plots"] == plots and cache.drawn == drawn

    # the panel's event feed hears of every trial on the study's own run
    page = (await api.get("events", query={"after": 0, "wait": 0}, expect=200)).body
    mine = [e for e in page["events"] if e["run_id"] == run["id"]]
    trial_events = [e for e in mine if e["kind"] == "trial"]
    assert {e["data"]["status"] for e in trial_events} == {"RUNNING", "SUCCEEDED"}
    assert {e["data"]["run"] for e in trial_events} == {t["id"] for t in trials}
    assert "spec" in {e["kind"] for e in mine}  # the budget grew


async def test_a_stopped_study_resumes_in_the_server_with_more_trials(
    api: Api, write_notebook: Write, jp_serverapp: Any, tmp_path: Path
) -> None:
    path = write_notebook("resume.ipynb", *TUNED)
    run = await start_study(
        api,
        path,
        space={"x": {"float": [0.0, 1.0]}},
        objective="loss",
        trials=3,
        parallel=1,
        param_strings={"pause": "0.4"},
    )
    await wait_study(api, run["id"], lambda v: v["counts"]["RUNNING"] == 1, timeout=60)
    await api.post("runs/{id}/cancel", path={"id": run["id"]}, expect=202)
    stopped = await wait_study(api, run["id"], timeout=60)
    assert stopped["status"] == "CANCELED"
    canceled = [t for t in stopped["trials"] if t["status"] == "CANCELED"]
    assert len(canceled) == 1
    cache = plot_cache(jp_serverapp)
    drawn = cache.drawn

    more = await api.post("studies/{id}/trials", path={"id": run["id"]}, body={"add": 1})
    assert more.status == 200, more.text
    assert more.body["status"] == "RUNNING" and more.body["study"]["trials"] == 4
    store = Store(tmp_path / "kfnb-home")
    assert store.get_run(run["id"]).runner_pid == os.getpid()  # resumed in the server

    view = await wait_study(api, run["id"])
    assert view["status"] == "SUCCEEDED"
    assert view["counts"]["SUCCEEDED"] == 4 and view["counts"]["CANCELED"] == 1
    finished = [t for t in stopped["trials"] if t["status"] == "SUCCEEDED"]
    assert [t for t in view["trials"] if t["id"] in {f["id"] for f in finished}] == finished
    # the trial the stop cut short runs again with the same parameters
    redone = [t for t in view["trials"] if t["number"] > canceled[0]["number"]]
    assert canceled[0]["params"] in [t["params"] for t in redone]
    assert cache.drawn > drawn  # new trials: drawn again
    last = max(t["number"] for t in view["trials"])
    assert f'id="kfnb-history-trial-{last}-succeeded"' in view["plots"]["history"]


async def test_a_study_that_reached_its_budget_goes_on_with_more_trials(
    api: Api, write_notebook: Write
) -> None:
    path = write_notebook("done.ipynb", *TUNED)
    run = await start_study(
        api, path, space={"x": {"float": [0.0, 1.0]}}, objective="loss", trials=1
    )
    done = await wait_study(api, run["id"])
    assert done["status"] == "SUCCEEDED"
    more = await api.post("studies/{id}/trials", path={"id": run["id"]}, body={"add": 1})
    assert more.status == 200, more.text
    view = await wait_study(api, run["id"])
    assert view["status"] == "SUCCEEDED" and view["counts"]["SUCCEEDED"] == 2
    assert view["trials"][0] == done["trials"][0]


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
async def test_trials_take_their_kernels_from_the_servers_warm_pool(
    api: Api, write_notebook: Write
) -> None:
    path = write_notebook("pooled.ipynb", *TUNED)
    run = await start_study(
        api, path, space={"x": {"float": [0.0, 1.0]}}, objective="loss", trials=2
    )
    view = await wait_study(api, run["id"])
    assert view["counts"]["SUCCEEDED"] == 2, view
    # one pool, of the server's size (a trial on the backend's defaults would have grown it)
    [pool] = (await api.get("pool", expect=200)).body
    assert pool["size"] == 1 and pool["started"] >= 3  # prep once, then fit twice


async def test_a_trial_worse_than_the_median_is_pruned(api: Api, write_notebook: Write) -> None:
    path = write_notebook("prune.ipynb", *TUNED)
    run = await start_study(
        api,
        path,
        space={"x": {"float": [0.0, 1.0]}},
        objective="loss",
        trials=2,
        parallel=1,
        prune={"name": "median", "startup_trials": 1, "warmup_steps": 0},
        initial=[{"x": 0.3}, {"x": 0.9}],
        param_strings={"pause": "1.0"},
    )
    view = await wait_study(api, run["id"])
    first, second = view["trials"]
    assert (first["status"], first["params"]) == ("SUCCEEDED", {"x": 0.3})
    assert (second["status"], second["params"]) == ("PRUNED", {"x": 0.9})
    assert second["value"] is None and second["intermediate"][0] == [0, pytest.approx(1.36)]
    assert view["counts"]["PRUNED"] == 1 and view["counts"]["SUCCEEDED"] == 1
    assert view["best"]["id"] == first["id"]
    assert 'id="kfnb-history-trial-1-pruned"' in view["plots"]["history"]
    page = (await api.get("events", query={"after": 0, "wait": 0}, expect=200)).body
    pruned = [e for e in page["events"] if e["run_id"] == run["id"] and e["kind"] == "pruned"]
    assert [(e["data"]["trial"], e["data"]["run"]) for e in pruned] == [(1, second["id"])]


async def test_stop_a_study_with_the_runs_cancel_route(api: Api, write_notebook: Write) -> None:
    path = write_notebook("slow.ipynb", *SLOW)
    run = await start_study(
        api, path, space={"x": {"choice": [1.0, 2.0]}}, objective="loss", trials=4, parallel=2
    )
    await wait_study(api, run["id"], lambda v: v["counts"]["RUNNING"] == 2, timeout=60)
    started = time.monotonic()
    cancel = await api.post("runs/{id}/cancel", path={"id": run["id"]}, expect=202)
    assert cancel.body["status"] in ("CANCELING", "CANCELED")
    view = await wait_study(api, run["id"], timeout=60)
    assert time.monotonic() - started < 30  # the 120 s steps were killed, not waited for
    assert view["status"] == "CANCELED"
    assert [t["status"] for t in view["trials"]] == ["CANCELED", "CANCELED"]
    for trial in view["trials"]:
        pipeline = (await api.get("runs/{id}", path={"id": trial["run"]}, expect=200)).body
        assert pipeline["status"] == "CANCELED"
    assert view["best"] is None
    assert "kfnb-study-placeholder" in view["plots"]["parallel"]
    conflict = await api.post("runs/{id}/cancel", path={"id": run["id"]}, expect=409)
    assert "already ended (CANCELED)" in conflict.body["message"]


async def test_a_run_that_is_no_study_and_unknown_ids(
    api: Api, write_notebook: Write, tmp_path: Path
) -> None:
    path = write_notebook("one.ipynb", ("step:only", "x = 1"))
    pipeline = (await api.post("runs", body={"path": path}, expect=201)).body
    await api.wait_run(pipeline["id"])
    for reply in (
        await api.get("studies/{id}", path={"id": pipeline["id"]}, expect=400),
        await api.post(
            "studies/{id}/trials", path={"id": pipeline["id"]}, body={"add": 1}, expect=400
        ),
    ):
        assert reply.body["message"] == f"run {pipeline['id']} is a pipeline run, not a study"
        assert "GET runs?kind=tune" in reply.body["fix"]
    missing = {"id": "19990101-000000-zzzz"}
    reply = await api.get("studies/{id}", path=missing, expect=404)
    assert reply.body["message"] == "no run with id '19990101-000000-zzzz'"
    assert reply.body["fix"]
    await api.post("studies/{id}/trials", path=missing, body={"add": 1}, expect=404)


GOOD = {"space": {"x": {"float": [0.0, 1.0]}}, "objective": "loss", "trials": 1}


@pytest.mark.parametrize(
    ("body", "message", "fix"),
    [
        ({"budget": 3}, "unknown field(s) budget in the study request", '"options"'),
        (
            {"space": {"y": {"float": [0, 1]}}},
            "has no parameter 'y'",
            "its parameters: x, n, pause",
        ),
        ({"space": {"x": {"float": 1}}}, "float takes [low, high]", "{float: [0.001, 10]"),
        ({"space": {"x": [1, 2]}}, "'x': [1, 2] is not a range", "kfnb.Float"),
        ({"space": "space.yaml"}, "space must be an object or a list, not str", "Katib"),
        ({"objective": None}, "a study needs an objective", "objective='accuracy'"),
        ({"direction": "up"}, "direction must be minimize or maximize", "maximize"),
        ({"algorithm": "annealing"}, "unknown search algorithm 'annealing'", "known: tpe"),
        ({"prune": "early"}, "unknown early stopping 'early'", "prune='median'"),
        ({"trials": 0}, "trials must be a positive integer", None),
        ({"objective": 3}, "objective must be a text, not int", "accuracy"),
        ({"params": {"n": "many"}}, "'many'", None),
        ({"params": {"x": 0.5}}, "'x' is both tuned and fixed", "leave it out of params"),
        ({"param_strings": {"n": 3}}, "param_strings must map parameter names to texts", "params"),
        ({"options": {"cach": False}}, "has no option 'cach'", "did you mean 'cache'"),
        ({"backend": "slurm"}, "no tuning backend 'slurm'", "local, katib"),
        ({"initial": {"x": 0.1}}, "initial must be a list of parameter sets", "[{"),
    ],
)
async def test_bad_study_requests_say_what_to_fix(
    api: Api, write_notebook: Write, body: dict[str, Any], message: str, fix: str | None
) -> None:
    path = write_notebook("tiny.ipynb", *TUNED)
    reply = await api.post("studies", body={"notebook": path, **GOOD, **body}, expect=400)
    assert message in reply.body["message"], reply.body
    if fix is not None:
        assert fix in (reply.body["fix"] or ""), reply.body
    store_runs = (await api.get("runs", query={"kind": "tune"}, expect=200)).body
    assert store_runs["total"] == 0  # nothing was started


async def test_the_notebook_is_a_contents_path(api: Api, write_notebook: Write) -> None:
    write_notebook("tiny.ipynb", *TUNED)
    await api.post("studies", body={"notebook": "../tiny.ipynb", **GOOD}, expect=404)
    await api.post("studies", body={"notebook": "nowhere.ipynb", **GOOD}, expect=404)
    reply = await api.post("studies", body={"notebook": "tiny.txt", **GOOD}, expect=400)
    assert reply.body["fix"] == "give the path of an .ipynb file"
    reply = await api.post("studies", body=GOOD, expect=400)
    assert reply.body["message"] == "a contents path is required"


@pytest.mark.parametrize("add", [0, -1, "3", True, None, 2.5])
async def test_add_trials_takes_a_positive_number(api: Api, tmp_path: Path, add: Any) -> None:
    store = Store(tmp_path / "kfnb-home")
    study = store.create_run(
        kind="tune",
        name="recorded",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={},
        spec={"study": {"space": {"x": {"float": [0.0, 1.0]}}, "objective": "loss", "trials": 1}},
    )
    reply = await api.post(
        "studies/{id}/trials", path={"id": study.id}, body={"add": add}, expect=400
    )
    assert reply.body["message"] == f"add must be a positive whole number of trials, not {add!r}"
    assert reply.body["fix"] == 'send {"add": 5}'
    reply = await api.post(
        "studies/{id}/trials", path={"id": study.id}, body={"more": 1}, expect=400
    )
    assert "unknown field(s) more" in reply.body["message"]
    assert (store.get_run(study.id).spec or {})["study"]["trials"] == 1  # nothing changed
