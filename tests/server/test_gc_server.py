"""Retention in the server: each run's disk use in the REST run records (``disk_bytes``), and the
automatic policy (``KfnbServerSettings.gc_*``) applied periodically in a worker thread.

The servers of this module remove ``train`` runs beyond the newest one every 0.1 s; the other
runs (pipelines) are left alone by that policy."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from api_client import Api, Write

from kfnb.server_ext.base import server_store
from kfnb.server_ext.config import KfnbServerSettings
from kfnb.server_ext.gc import server_policy
from kfnb.tracking import Run, Store


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    jp_server_config["KfnbServerSettings"].update(gc_keep_last=1, gc_kind="train", gc_interval=0.1)
    return jp_server_config


def ended(store: Store, name: str, kind: str, size: int = 0, status: str = "SUCCEEDED") -> Run:
    run = store.create_run(
        kind=kind, name=name, backend="local", notebook=None, notebook_hash=None, params={}
    )
    if size:
        Path(run.artifacts_dir, "model.bin").write_bytes(b"m" * size)
    store.set_run_status(run.id, "RUNNING")
    if status != "RUNNING":
        store.set_run_status(run.id, status)  # type: ignore[arg-type]
    return store.get_run(run.id)


async def test_run_records_carry_their_disk_use(
    api: Api, jp_serverapp: Any, write_notebook: Write
) -> None:
    store = server_store(jp_serverapp.web_app.settings)
    sized = ended(store, "sized", "pipeline", size=1234)
    listed = (await api.get("runs", expect=200)).body["runs"]
    assert {r["id"]: r["disk_bytes"] for r in listed} == {sized.id: 1234}
    one = (await api.get("runs/{id}", path={"id": sized.id[:10]}, expect=200)).body
    assert one["disk_bytes"] == 1234

    path = write_notebook("tiny.ipynb", ("step:a", "x = 1"))
    started = (await api.post("runs", body={"path": path}, expect=201)).body
    assert "disk_bytes" not in started  # optional: only the lists and GET runs/{id} carry it
    await api.wait_run(started["id"])
    done = (await api.get("runs/{id}", path={"id": started["id"]}, expect=200)).body
    assert done["disk_bytes"] > 0  # its log, saved values, executed notebook


async def test_the_policy_removes_runs_periodically(
    api: Api, jp_serverapp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kfnb.server")
    collector = jp_serverapp.web_app.settings["kfnb_collector"]
    assert collector.policy.describe() == "train runs, the last 1 kept"
    store = server_store(jp_serverapp.web_app.settings)
    old = [ended(store, f"old{i}", "train", size=100) for i in range(2)]
    going_on = ended(store, "going-on", "train", status="RUNNING")
    newest = ended(store, "newest", "train", size=10)
    pipeline = ended(store, "pipeline", "pipeline")
    deadline = time.monotonic() + 20
    while any(Path(r.artifacts_dir).exists() for r in old) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)  # a round or two more, with every run in place
    left = (await api.get("runs", query={"limit": 100}, expect=200)).body["runs"]
    # the newest train run stays by the policy, the one still running by the hard rule
    assert {r["id"] for r in left} == {going_on.id, newest.id, pipeline.id}
    for run in old:
        assert not Path(run.artifacts_dir).exists()
        await api.get("runs/{id}", path={"id": run.id}, expect=404)
    removed = [r.getMessage() for r in caplog.records if "kfnb removed" in r.getMessage()]
    assert removed and all(r.id in " ".join(removed) for r in old)
    assert collector.last is not None and collector.last.held[0].id == going_on.id

    from kfnb.server_ext import _unload_jupyter_server_extension

    _unload_jupyter_server_extension(jp_serverapp)
    assert collector._callback is None and "kfnb_collector" not in jp_serverapp.web_app.settings


async def test_a_round_ends_runs_whose_runner_died_before_it_applies_the_policy(
    jp_serverapp: Any,
) -> None:
    """A run whose runner was killed stays RUNNING until someone notices: the round does first
    (as ``kfnb gc`` does), so the policy removes it instead of holding it for ever."""
    store = server_store(jp_serverapp.web_app.settings)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    orphan = store.create_run(
        kind="train",
        name="orphan",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={},
        runner_pid=gone.pid,
    )
    store.set_run_status(orphan.id, "RUNNING")
    ended(store, "newest", "train")
    deadline = time.monotonic() + 20
    while Path(orphan.artifacts_dir).exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not Path(orphan.artifacts_dir).exists()
    assert store.count_runs(kind="train") == 1


def test_no_policy_by_default_and_a_bad_one_is_off(caplog: pytest.LogCaptureFixture) -> None:
    assert server_policy(KfnbServerSettings()) is None
    caplog.set_level(logging.ERROR, logger="kfnb.server")
    assert server_policy(KfnbServerSettings(gc_older_than="soon")) is None
    assert "gc_*" in caplog.text and "'soon' is not a duration" in caplog.text
    policy = server_policy(KfnbServerSettings(gc_older_than="30d", gc_status="failed"))
    assert policy is not None and policy.describe() == "failed runs ended over 30d ago"
