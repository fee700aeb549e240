"""``GET /kfnb/api/events``: the run store's events, live (server-sent events) or as a page.

Every status change of every run and step is an event in the store, whoever made it (this
server's runs, the CLI, a notebook kernel, the refresher of remote runs). The stream polls the
store every :data:`POLL_S` and writes each new event as ``id: <id>\\nevent: <kind>\\ndata:
<Event JSON>\\n\\n``; a ``: ping`` comment every :data:`HEARTBEAT_S` keeps proxies from closing
it. A client reconnects with the last id it saw (``after=N`` or the ``Last-Event-ID`` header
that ``EventSource`` sends; the larger wins). ``wait=0`` or ``Accept: application/json`` gives
``{"events": [...], "last": N}`` at once instead: the polling fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from tornado.iostream import StreamClosedError

from .base import KfnbHandler, dumps
from .errors import BadRequest

POLL_S = 0.25
HEARTBEAT_S = 15.0
PAGE = 1000
PAGE_MAX = 10000
#: The largest event id a client may name (``after``, ``Last-Event-ID``): within SQLite's range.
LAST_ID_MAX = 2**62


def close_streams(settings: dict[str, Any]) -> None:
    """End every open stream (the extension unloads: the server stops)."""
    for closed in list(settings.get("kfnb_streams", ())):
        closed.set()


def frame(event: dict[str, Any]) -> str:
    """One SSE frame (the JSON has no raw line breaks; a kind with one would end the field)."""
    kind = " ".join(str(event["kind"]).splitlines())
    return f"id: {event['id']}\nevent: {kind}\ndata: {dumps(event)}\n\n"


class EventsHandler(KfnbHandler):
    """``GET events?after=N`` (``text/event-stream``), ``&wait=0`` for a JSON page."""

    _closed: asyncio.Event | None = None
    _gone = False

    def on_connection_close(self) -> None:
        self._gone = True
        if self._closed is not None:
            self._closed.set()

    def _after(self) -> int:
        after = self.int_argument("after", 0, 0, LAST_ID_MAX)
        last_seen = self.request.headers.get("Last-Event-ID", "").strip()
        if last_seen:
            shown = repr(last_seen) if len(last_seen) <= 40 else repr(last_seen[:37] + "...")
            fix = "send the id of an event this server sent (or no Last-Event-ID)"
            try:
                seen = int(last_seen)
            except ValueError:
                raise BadRequest(f"Last-Event-ID {shown} is not an event id", fix=fix) from None
            if not 0 <= seen <= LAST_ID_MAX:  # the store's ids are SQLite integers
                raise BadRequest(f"Last-Event-ID {shown} is out of range", fix=fix)
            after = max(after, seen)
        return after

    def _wants_json(self) -> bool:
        accept = self.request.headers.get("Accept", "")
        wait = self.get_query_argument("wait", None)
        if wait not in (None, "", "0", "1"):
            raise BadRequest(
                f"wait={wait!r} is not known", fix="use wait=0 for a JSON page at once"
            )
        return wait == "0" or ("application/json" in accept and "text/event-stream" not in accept)

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        after = self._after()
        limit = self.int_argument("limit", PAGE, 1, PAGE_MAX)
        store = self.store
        if self._wants_json():
            events = await self.blocking(store.all_events, after=after, limit=limit)
            # no events: a store made anew has smaller ids, so let the client start over
            last = events[-1].id if events else min(after, await self.blocking(store.last_event_id))
            self.reply({"events": [e.to_dict() for e in events], "last": last})
            return
        await self.stream(after)

    async def stream(self, after: int) -> None:
        self._closed = closed = asyncio.Event()
        streams: set[asyncio.Event] = self.settings.setdefault("kfnb_streams", set())
        streams.add(closed)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # nginx and friends: do not buffer
        store = self.store
        try:
            await self.flush()  # the headers: EventSource's `open` fires now
            wrote = time.monotonic()
            while not closed.is_set():
                events = await self.blocking(store.all_events, after=after, limit=PAGE)
                if events:
                    self.write("".join(frame(e.to_dict()) for e in events))
                    after = events[-1].id
                elif time.monotonic() - wrote >= HEARTBEAT_S:
                    self.write(": ping\n\n")
                if events or time.monotonic() - wrote >= HEARTBEAT_S:
                    await self.flush()
                    wrote = time.monotonic()
                if len(events) < PAGE:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(closed.wait(), POLL_S)
        except StreamClosedError:
            return
        finally:
            streams.discard(closed)
        if not self._gone:  # the server stops: end the response properly
            self.finish(set_content_type="text/event-stream; charset=utf-8")
