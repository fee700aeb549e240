"""``GET events``: the store's events as a JSON page, and live as server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from api_client import Api, Write, component, parse_sse, validate

import kfnb.server_ext.events as events_module

TWO = (("step:a", "x = 1"), ("step:b", "y = x + 1"))


async def run_to_end(api: Api, path: str) -> dict[str, Any]:
    run = (await api.post("runs", body={"path": path}, expect=201)).body
    return await api.wait_run(run["id"])


async def test_the_json_page_has_the_runs_events_after_an_id(
    api: Api, write_notebook: Write
) -> None:
    path = write_notebook("two.ipynb", *TWO)
    run = await run_to_end(api, path)

    page = (await api.get("events", query={"after": 0, "wait": 0}, expect=200)).body
    mine = [e for e in page["events"] if e["run_id"] == run["id"]]
    statuses = [e["data"]["status"] for e in mine if e["kind"] == "run"]
    assert statuses == ["PENDING", "RUNNING", "SUCCEEDED"]
    steps = [(e["data"]["step"], e["data"]["status"]) for e in mine if e["kind"] == "step"]
    assert ("a", "SUCCEEDED") in steps and ("b", "RUNNING") in steps
    assert steps.index(("a", "SUCCEEDED")) < steps.index(("b", "RUNNING"))
    ids = [e["id"] for e in page["events"]]
    assert ids == sorted(ids) and page["last"] == ids[-1]

    after = ids[2]
    rest = (
        await api.get(
            "events", query={"after": after}, headers={"Accept": "application/json"}, expect=200
        )
    ).body
    assert [e["id"] for e in rest["events"]] == ids[3:]
    few = (await api.get("events", query={"after": 0, "wait": 0, "limit": 2}, expect=200)).body
    assert [e["id"] for e in few["events"]] == ids[:2] and few["last"] == ids[1]
    none = (await api.get("events", query={"after": ids[-1], "wait": 0}, expect=200)).body
    assert none == {"events": [], "last": ids[-1]}
    # ids from a store that was made anew: start over from the newest one there is
    reset = (await api.get("events", query={"after": ids[-1] + 1000, "wait": 0}, expect=200)).body
    assert reset == {"events": [], "last": ids[-1]}
    await api.get("events", query={"after": -1, "wait": 0}, expect=400)
    await api.get("events", query={"wait": "soon"}, expect=400)


class Stream:
    """A raw HTTP/1.1 request to the events route, read chunk by chunk."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.text = ""

    async def head(self) -> None:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = raw.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            if ":" in line:
                key, _, value = line.partition(":")
                self.headers[key.strip().lower()] = value.strip()

    async def chunk(self, timeout: float) -> str:
        size = int((await asyncio.wait_for(self.reader.readuntil(b"\r\n"), timeout)).strip(), 16)
        data = await asyncio.wait_for(self.reader.readexactly(size + 2), timeout)
        text = data[:-2].decode()
        self.text += text
        return text

    async def until(self, predicate: Any, timeout: float = 60) -> list[dict[str, str]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(parse_sse(self.text)):
            left = deadline - loop.time()
            assert left > 0, f"stream did not deliver in time:\n{self.text}"
            await self.chunk(left)
        return parse_sse(self.text)


@asynccontextmanager
async def stream(
    api: Api, query: str, headers: dict[str, str] | None = None
) -> AsyncIterator[Stream]:
    port = api.client.get_http_port()  # type: ignore[attr-defined]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    url = api.url("events") + query
    lines = [
        f"GET {url} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Accept: text/event-stream",
        *[f"{k}: {v}" for k, v in {**api.auth, **(headers or {})}.items()],
        "",
        "",
    ]
    writer.write("\r\n".join(lines).encode())
    await writer.drain()
    s = Stream(reader, writer)
    try:
        await s.head()
        yield s
    finally:
        writer.close()
        await writer.wait_closed()


async def no_streams_left(settings: dict[str, Any]) -> None:
    for _ in range(100):
        if not settings.get("kfnb_streams"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server still streams to a client that left")


async def test_the_stream_delivers_a_runs_status_events(
    api: Api, write_notebook: Write, jp_serverapp: Any
) -> None:
    path = write_notebook("two.ipynb", *TWO)
    before = (await api.get("events", query={"wait": 0}, expect=200)).body["last"]
    async with stream(api, f"?after={before}") as s:
        assert s.status == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        assert s.headers["cache-control"] == "no-cache"
        run = (await api.post("runs", body={"path": path}, expect=201)).body

        def ended(frames: list[dict[str, str]]) -> bool:
            found = [json.loads(f["data"]) for f in frames]
            return any(
                e["run_id"] == run["id"]
                and e["kind"] == "run"
                and e["data"]["status"] == "SUCCEEDED"
                for e in found
            )

        frames = await s.until(ended)
        assert jp_serverapp.web_app.settings["kfnb_streams"]
    events = []
    for f in frames:
        event = json.loads(f["data"])
        validate(api.contract, event, component(api.contract, "Event"))
        assert f["id"] == str(event["id"]) and f["event"] == event["kind"]
        events.append(event)
    assert all(e["id"] > before for e in events)
    statuses = [e["data"]["status"] for e in events if e["kind"] == "run"]
    assert statuses == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert {(e["data"]["step"], e["data"]["status"]) for e in events if e["kind"] == "step"} >= {
        ("a", "RUNNING"),
        ("a", "SUCCEEDED"),
        ("b", "RUNNING"),
        ("b", "SUCCEEDED"),
    }
    await no_streams_left(jp_serverapp.web_app.settings)  # the client left: the handler ended


async def test_the_stream_resumes_after_the_last_event_id(
    api: Api, write_notebook: Write, jp_serverapp: Any
) -> None:
    path = write_notebook("two.ipynb", *TWO)
    await run_to_end(api, path)
    ids = [e["id"] for e in (await api.get("events", query={"wait": 0}, expect=200)).body["events"]]
    # EventSource reconnects to the same URL, with the last id it saw in Last-Event-ID
    async with stream(api, "?after=0", {"Last-Event-ID": str(ids[-3])}) as s:
        frames = await s.until(lambda fs: len(fs) >= 2)
    assert [int(f["id"]) for f in frames] == ids[-2:]
    await no_streams_left(jp_serverapp.web_app.settings)


async def test_an_idle_stream_sends_heartbeats(
    api: Api, monkeypatch: pytest.MonkeyPatch, jp_serverapp: Any
) -> None:
    monkeypatch.setattr(events_module, "HEARTBEAT_S", 0.3)
    async with stream(api, "") as s:
        await s.chunk(timeout=10)
        while ": ping" not in s.text:
            await s.chunk(timeout=10)
    assert parse_sse(s.text) == []  # comments only: no event
    await no_streams_left(jp_serverapp.web_app.settings)


async def test_streams_end_when_the_server_stops(api: Api, jp_serverapp: Any) -> None:
    from kfnb.server_ext import _unload_jupyter_server_extension

    async with stream(api, "") as s:
        for _ in range(100):
            if jp_serverapp.web_app.settings.get("kfnb_streams"):
                break
            await asyncio.sleep(0.02)
        _unload_jupyter_server_extension(jp_serverapp)
        while True:  # the response ends with the last, empty chunk
            if await s.chunk(timeout=10) == "":
                break
    assert not jp_serverapp.web_app.settings["kfnb_streams"]
