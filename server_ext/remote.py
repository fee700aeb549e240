"""Keep the run store current for runs this server does not drive itself.

A run on Kubeflow Pipelines moves on in the cluster; only asking the cluster brings its new
statuses into the store (and so into the events the panel streams). Every
``KfnbServerSettings.refresh_interval`` seconds the :class:`Refresher` asks, in a worker
thread, for each open remote run (``record.remote`` set) through its backend's
``attach(store, id).refresh()`` (``open_backend`` with the server's settings), as ``kfnb
show`` does. It also ends as FAILED the local runs whose runner process died
(``Store.recover``, which every CLI start calls too). Errors are logged, never raised: a
cluster that cannot be reached leaves the run as last seen.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tornado.ioloop import PeriodicCallback

from kfnb.handles import attach
from kfnb.settings import Settings
from kfnb.tracking import Store

log = logging.getLogger("kfnb.server")


def refresh_open_runs(store: Store, settings: Settings, failing: dict[str, str]) -> list[str]:
    """Refresh every open remote run once; return the ids refreshed without error.

    ``failing`` maps run ids to the last error logged for them, so that a cluster that stays
    unreachable is reported once, not every few seconds.
    """
    store.recover()
    refreshed = []
    open_runs = store.list_runs(limit=None, remote=True, status=("PENDING", "RUNNING", "CANCELING"))
    for record in open_runs:
        try:
            attach(store, record.id, settings).refresh()
        except Exception as err:  # logged; the next tick tries again
            text = f"{type(err).__name__}: {err}"
            if failing.get(record.id) != text:
                log.warning(
                    "kfnb: cannot refresh run %s from its backend %r: %s",
                    record.id,
                    record.backend,
                    text,
                )
            failing[record.id] = text
            continue
        failing.pop(record.id, None)
        refreshed.append(record.id)
    return refreshed


class Refresher:
    """The periodic refresh of remote runs, started with the extension, stopped at unload."""

    def __init__(self, settings: dict[str, Any], interval: float) -> None:
        self.settings = settings
        self.interval = interval
        self.failing: dict[str, str] = {}
        self._busy = False
        self._callback: PeriodicCallback | None = None

    def start(self) -> None:
        if self.interval > 0 and self._callback is None:
            self._callback = PeriodicCallback(self.tick, self.interval * 1000)
            self._callback.start()

    def stop(self) -> None:
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    async def tick(self) -> list[str]:
        """One round (skipped while the previous one still runs)."""
        if self._busy:
            return []
        self._busy = True
        try:
            from .base import server_store

            store = server_store(self.settings)
            settings = self.settings["kfnb"].settings()
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                None, refresh_open_runs, store, settings, self.failing
            )
        except Exception:  # a store that cannot be opened: say so, go on
            log.exception("kfnb: the refresh of remote runs failed")
            return []
        finally:
            self._busy = False
