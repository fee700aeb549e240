"""The server refreshes open remote runs in the background, so their events reach the panel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from api_client import Api

from kfnb.backends import Backend, RunHandle, register, unregister
from kfnb.tracking import Store

REFRESHED: list[str] = []


class FakeHandle(RunHandle):
    """A cluster run that moves one status forward each time it is asked."""

    def wait(self, timeout: float | None = None) -> str:
        return self.status

    def cancel(self) -> None:
        self.store.request_cancel(self.id)

    def refresh(self) -> str:
        REFRESHED.append(self.id)
        following = {"PENDING": "RUNNING", "RUNNING": "SUCCEEDED"}.get(self.status)
        if following == "RUNNING":
            self.store.set_run_status(self.id, "RUNNING")
            self.store.set_step_status(self.id, "s", "RUNNING")
        elif following == "SUCCEEDED":
            self.store.set_step_status(self.id, "s", "SUCCEEDED")
            self.store.set_run_status(self.id, "SUCCEEDED")
        return self.status


@dataclass
class NoOptions:
    """The config of the fake backends: they take no options."""


class FakeRemote(Backend):
    name = "fake-remote"
    config_class = NoOptions

    def submit(self, pipeline: Any, params: Any, store: Store, **_: Any) -> RunHandle:
        raise NotImplementedError

    def attach(self, store: Store, run_id: str) -> RunHandle:
        return FakeHandle(store, run_id)


class Unreachable(FakeRemote):
    name = "unreachable-remote"

    def attach(self, store: Store, run_id: str) -> RunHandle:
        raise ConnectionError("the cluster is down")


@pytest.fixture(autouse=True)
def backends() -> Iterator[None]:
    register("fake-remote", FakeRemote)
    register("unreachable-remote", Unreachable)
    REFRESHED.clear()
    yield
    unregister("fake-remote")
    unregister("unreachable-remote")


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    jp_server_config["KfnbServerSettings"]["refresh_interval"] = 0.1
    return jp_server_config


def remote_run(home: Path, backend: str) -> str:
    run = Store(home).create_run(
        kind="pipeline",
        name="remote",
        backend=backend,
        notebook=None,
        notebook_hash=None,
        params={"seed": 1},
        steps=["s"],
        remote={"id": "kfp-123", "url": "http://kfp.example/#/runs/1"},
    )
    return run.id


async def test_open_remote_runs_are_refreshed_until_they_end(
    api: Api, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kfnb.server")
    moving = remote_run(tmp_path / "kfnb-home", "fake-remote")
    stuck = remote_run(tmp_path / "kfnb-home", "unreachable-remote")

    run = await api.wait_run(moving, timeout=30)

    assert run["status"] == "SUCCEEDED" and run["steps"][0]["status"] == "SUCCEEDED"
    assert run["remote"]["url"] == "http://kfp.example/#/runs/1"
    assert run["notebook_path"] is None
    ticks = len(REFRESHED)
    await asyncio.sleep(0.5)
    assert len(REFRESHED) == ticks  # an ended run is not asked again
    stuck_run = (await api.get("runs/{id}", path={"id": stuck}, expect=200)).body
    assert stuck_run["status"] == "PENDING"  # left as last seen
    warnings = [r.getMessage() for r in caplog.records if "the cluster is down" in r.getMessage()]
    assert len(warnings) == 1, warnings  # said once, not every tick
    assert stuck in warnings[0]
    events = (await api.get("events", query={"wait": 0}, expect=200)).body["events"]
    assert [
        e["data"]["status"] for e in events if e["run_id"] == moving and e["kind"] == "run"
    ] == ["PENDING", "RUNNING", "SUCCEEDED"]


async def test_the_refresher_stops_with_the_extension(jp_serverapp: Any) -> None:
    refresher = jp_serverapp.web_app.settings["kfnb_refresher"]
    assert refresher._callback is not None and refresher._callback.is_running()
    from kfnb.server_ext import _unload_jupyter_server_extension

    _unload_jupyter_server_extension(jp_serverapp)
    assert refresher._callback is None and "kfnb_refresher" not in jp_serverapp.web_app.settings
