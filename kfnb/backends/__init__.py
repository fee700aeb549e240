"""Pipeline backends: where a pipeline runs. A registry by name, like papermill's engines.

A backend takes a linked ``Pipeline`` and checked parameter values, records the run in the run
store and returns a ``RunHandle`` to follow it; ``attach`` gives a handle on a run it started
earlier. ``local`` (this machine, the default) and ``kfp`` (Kubeflow Pipelines) are built in;
others register with ``register(name, cls)`` or through the ``kfnb.backends`` entry point
group. Each backend has a typed config (a dataclass) of its own.
"""

from __future__ import annotations

import abc
import difflib
import threading
import time
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, ClassVar

from ..dag import Pipeline
from ..errors import KfnbError
from ..tracking import TERMINAL_RUN, Run, Store

ENTRY_POINT_GROUP = "kfnb.backends"


class BackendError(KfnbError):
    """A backend cannot run the pipeline as asked (unknown backend, resources it lacks...)."""


class RunView:
    """A run as the run store records it: what every backend and surface reads."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.id = run_id

    @property
    def record(self) -> Run:
        return self.store.get_run(self.id)

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_RUN

    def logs(self, step: str) -> str:
        """The log of one step so far."""
        path = self.record.step(step).log
        if not path:
            return ""
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


class RunHandle(RunView, abc.ABC):
    """A submitted run, as its backend follows it."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ends (or ``timeout`` seconds pass); return its status."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Ask the run to stop; ``wait()`` returns once it has."""

    def refresh(self) -> str:
        """Bring what the backend knows of the run into the store (a remote run's status);
        return the status. Runs driven by a process of this machine are always up to date."""
        return self.status


class StoreRunHandle(RunHandle):
    """A run followed through the store alone: another process (a runner) drives it."""

    poll = 0.2

    def wait(self, timeout: float | None = None) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            time.sleep(self.poll if left is None else min(self.poll, left))
        return self.status

    def cancel(self) -> None:
        self.store.request_cancel(self.id)


class Backend(abc.ABC):
    """Runs pipelines somewhere. Subclasses set ``name`` and ``config_class``."""

    name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.config_class()

    @abc.abstractmethod
    def submit(self, pipeline: Pipeline, params: Mapping[str, Any], store: Store) -> RunHandle:
        """Check the pipeline fits this backend, record a run and start it."""

    def attach(self, store: Store, run_id: str) -> RunHandle:
        """A handle on a run this backend started earlier, maybe in another process."""
        return StoreRunHandle(store, store.resolve_id(run_id))


_registry: dict[str, type[Backend]] = {}
_entry_points_loaded = False
_lock = threading.Lock()


def register(name: str, cls: type[Backend]) -> None:
    """Make ``cls`` available as backend ``name`` (replacing any backend of that name)."""
    _registry[name] = cls


def unregister(name: str) -> None:
    _registry.pop(name, None)


def register_entry_points() -> None:
    """Register the backends other packages declare in the ``kfnb.backends`` group."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        register(ep.name, ep.load())


def _builtin() -> None:
    global _entry_points_loaded
    with _lock:
        if "local" not in _registry:
            from .local import LocalBackend

            register("local", LocalBackend)
        if "kfp" not in _registry:
            from .kfp import KfpBackend

            register("kfp", KfpBackend)
        if not _entry_points_loaded:
            _entry_points_loaded = True
            register_entry_points()


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as ``name``."""
    _builtin()
    try:
        return _registry[name]
    except KeyError:
        known = sorted(_registry)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise BackendError(
            f"unknown backend {name!r}. Fix: {hint}use one of: {', '.join(known)}"
        ) from None


def backends() -> list[str]:
    _builtin()
    return sorted(_registry)
