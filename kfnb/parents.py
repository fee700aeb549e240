"""A thread of this process that drives a parent run through its children: a study's trials
(``kfnb.tuning.local.StudyRunner``), a sweep's sets (``kfnb.batching.runner.BatchRunner``).

``ParentRunner`` holds what both do alike: ``start()`` runs ``_run()`` in a daemon thread;
``stop()`` wakes it to stop; a runner that fails (a bug, a broken store, Ctrl-C) stops the
children it started and ends its run FAILED, leaving no orphans; ``finished`` is set when the
thread returns, whatever happened (``backends.RunnerHandle`` waits on it).
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from .tracking import TERMINAL_RUN, Store

log = logging.getLogger(__name__)


class ParentRunner:
    """Subclasses set ``what`` ("study", "batch") and implement ``_run`` and
    ``_stop_children``."""

    what = "run"

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.cancel_event = threading.Event()
        self.finished = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> Any:
        self.thread = threading.Thread(
            target=self.run, name=f"kfnb-{self.what}-{self.run_id}", daemon=True
        )
        self.thread.start()
        return self

    def stop(self) -> None:
        self.cancel_event.set()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as err:  # a bug, a broken store, Ctrl-C: end it, leave no orphans
            message = f"the {self.what}'s runner failed: {type(err).__name__}: {err}"
            log.error("%s %s: %s\n%s", self.what, self.run_id, message, traceback.format_exc())
            self._stop_children()
            self._end("FAILED", message)
            if not isinstance(err, Exception):
                raise
        finally:
            self.finished.set()
            try:
                self.store.close()  # this thread's connection: a long-lived process runs many
            except Exception as err:  # pragma: no cover - closing a connection
                log.warning("%s %s: %s", self.what, self.run_id, err)

    def _run(self) -> None:
        raise NotImplementedError

    def _stop_children(self) -> None:
        raise NotImplementedError

    def _end(self, status: str, error: str | None) -> None:
        """End the run with ``status`` unless it already ended (a failure to record it is
        logged: the runner is ending anyway)."""
        try:
            if self.store.get_run(self.run_id).status not in TERMINAL_RUN:
                self.store.set_run_status(self.run_id, status, error=error)  # type: ignore[arg-type]
        except Exception as err:
            log.error(
                "%s %s: could not record its end (%s): %s", self.what, self.run_id, status, err
            )
