"""Following a run from a daemon thread: the kernel's main thread never waits on a run.

Every ``poll`` seconds the follower reads the run's new events (after the last id it saw) and
the run record, and hands the record to ``update``. A remote (KFP) run that is still going is
refreshed through its handle at most every ``refresh_every`` seconds, so its state reaches the
store. It stops after one last update once the run has ended (then calls ``on_end``), or when
``stop()`` is called (the widget was closed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..tracking import Event, Run, Store


class Follower:
    def __init__(
        self,
        store: Store,
        run_id: str,
        update: Callable[[Run, list[Event]], None],
        *,
        poll: float = 0.5,
        refresh: Callable[[], object] | None = None,
        refresh_every: float = 5.0,
        on_end: Callable[[Run], None] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.update = update
        self.poll = poll
        self.refresh = refresh
        self.refresh_every = refresh_every
        self.on_end = on_end
        self.last_event = 0
        self.error: BaseException | None = None  # the last error an update raised
        self._stop = threading.Event()
        self._last_refresh = 0.0
        self._thread = threading.Thread(
            target=self._loop, name=f"kfnb-follow-{run_id}", daemon=True
        )

    def start(self) -> Follower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def step(self) -> Run:
        """One look at the run: refresh a remote run if due, read events and the record."""
        if self.refresh is not None and time.monotonic() - self._last_refresh >= self.refresh_every:
            self._last_refresh = time.monotonic()
            try:
                self.refresh()
            except Exception as err:  # the cluster is unreachable: show what the store has
                self.error = err
        events = self.store.events(self.run_id, after=self.last_event)
        if events:
            self.last_event = events[-1].id
        record = self.store.get_run(self.run_id)
        self.update(record, events)
        return record

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                record = self.step()
            except Exception as err:  # keep following: a glitch must not freeze the widget
                self.error = err
                self._stop.wait(self.poll)
                continue
            if record.done:
                if self.on_end is not None:
                    try:
                        self.on_end(record)
                    except Exception as err:
                        self.error = err
                return
            self._stop.wait(self.poll)
