"""The server's automatic retention policy: ``kfnb gc`` every ``gc_interval`` seconds.

``KfnbServerSettings.gc_keep_last``, ``gc_older_than``, ``gc_status`` and ``gc_kind`` make a
``kfnb.retention.Policy`` (the same rules as ``kfnb gc``: criteria narrow what goes, the runs
under a top-level run go with it, runs that have not ended and the runs kept runs' cached steps
reused are always kept; runs whose runner died are ended first, as ``kfnb gc`` does). None set,
the default, is no policy: the server removes nothing
unless told to. A round runs in a worker thread, never on the event loop, and is skipped while
the previous one still runs; what it removed is logged, and its errors are logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tornado.ioloop import PeriodicCallback

from kfnb.retention import Policy, PolicyError, Report, collect, human_bytes

from .config import KfnbServerSettings

log = logging.getLogger("kfnb.server")


def server_policy(settings: KfnbServerSettings) -> Policy | None:
    """The policy the settings describe; ``None`` when they set none (or a bad one: logged)."""
    try:
        policy = Policy.of(
            keep_last=settings.gc_keep_last,
            older_than=settings.gc_older_than or None,
            status=settings.gc_status or None,
            kind=settings.gc_kind or None,
        )
    except PolicyError as err:
        log.error("kfnb: the automatic retention policy (KfnbServerSettings.gc_*) is off: %s", err)
        return None
    return None if policy.empty else policy


def _round(store: Any, policy: Policy) -> Report:
    """End the runs whose runner died first (as every ``kfnb gc`` does), so that the policy sees
    them ended, not running for ever; then remove what the policy selects."""
    store.recover()
    return collect(store, policy)


class Collector:
    """The periodic retention round, started with the extension, stopped at unload."""

    def __init__(self, settings: dict[str, Any], policy: Policy | None, interval: float) -> None:
        self.settings = settings
        self.policy = policy
        self.interval = interval
        self.last: Report | None = None
        self._busy = False
        self._callback: PeriodicCallback | None = None

    def start(self) -> None:
        if self.policy is not None and self.interval > 0 and self._callback is None:
            self._callback = PeriodicCallback(self.tick, self.interval * 1000)
            self._callback.start()
            log.info("kfnb removes %s every %gs", self.policy.describe(), self.interval)

    def stop(self) -> None:
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    async def tick(self) -> Report | None:
        """One round (skipped while the previous one still runs, or without a policy)."""
        if self._busy or self.policy is None:
            return None
        self._busy = True
        try:
            from .base import server_store

            store = server_store(self.settings)
            loop = asyncio.get_running_loop()
            report = await loop.run_in_executor(None, _round, store, self.policy)
        except Exception:  # a store that cannot be opened, a disk error: say so, go on
            log.exception("kfnb: the automatic retention round failed")
            return None
        finally:
            self._busy = False
        self.last = report
        if report.removed:
            log.info(
                "kfnb removed %d run(s) (%s), freeing %s: %s",
                report.run_count,
                self.policy.describe(),
                human_bytes(report.freed_bytes),
                ", ".join(r.run.id for r in report.removed),
            )
        return report
