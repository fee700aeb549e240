"""Pipeline backends: where a pipeline runs. A registry by name, like papermill's engines.

``local`` (this machine, the default) and ``kfp`` (Kubeflow Pipelines) are built in; others
register with ``register(name, cls)`` or through the ``kfnb.backends`` entry point group. The
contract every backend implements, and what surfaces may ask of it, is in ``base``; typed
options in ``options``. Surfaces call ``open_backend(name, settings, options)`` and never branch
on a backend's name.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..config import check_keys, nearest
from .base import (
    LOG_PAGE,
    Availability,
    Backend,
    LogPage,
    RunHandle,
    RunnerHandle,
    RunView,
    StoreRunHandle,
    read_log_file,
)
from .options import BackendError, Option, option

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "LOG_PAGE",
    "Availability",
    "Backend",
    "BackendError",
    "LogPage",
    "Option",
    "RunHandle",
    "RunView",
    "RunnerHandle",
    "StoreRunHandle",
    "availability",
    "backends",
    "check_config_file",
    "describe",
    "get_backend",
    "open_backend",
    "option",
    "read_log_file",
    "register",
    "register_entry_points",
    "unregister",
]

ENTRY_POINT_GROUP = "kfnb.backends"

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
    from importlib.metadata import entry_points  # ~20 ms: only when a backend is looked up

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
        raise BackendError(
            f"unknown backend {name!r}",
            fix=f"{nearest(str(name), known)}use one of: {', '.join(known)}",
        ) from None


def backends() -> list[str]:
    """The registered backends in registration order: ``local`` (the default) first, then
    ``kfp``, then those of other packages."""
    _builtin()
    return list(_registry)


def open_backend(
    name: str, settings: Settings | None = None, options: Mapping[str, Any] | None = None
) -> Backend:
    """Backend ``name`` configured from ``options`` > environment > config file (``settings``,
    loaded here when not given). The one way surfaces get a backend."""
    from ..settings import Settings

    cls = get_backend(name)
    settings = settings if settings is not None else Settings.load()
    check_config_file(settings)
    return cls(cls.configure(settings, dict(options or {})), settings)


def check_config_file(settings: Settings) -> None:
    """Refuse a config file section that names no backend, or a key that names no option of its
    backend, whichever backend is used now (a typo should not wait for the day it matters)."""
    settings.check_sections(backends())
    for section, values in settings.sections.items():
        known = [o.name for o in get_backend(section).options()]
        check_keys(section, values, known, settings.config_file)


def describe(settings: Settings) -> list[dict[str, Any]]:
    """Every backend as surfaces list it: availability (name, available, detail, fix), whether
    its runs outlive the submitting process, and its options (hidden ones left out)."""
    return [
        {
            **entry.to_dict(),
            "detached": get_backend(entry.name).detached,
            "options": [o.to_dict() for o in get_backend(entry.name).options() if not o.hidden],
        }
        for entry in availability(settings)
    ]


def availability(settings: Settings) -> list[Availability]:
    """Every registered backend: whether it can run here, and why not."""
    found = []
    for name in backends():
        cls = get_backend(name)
        try:
            found.append(cls.available(settings))
        except Exception as err:  # a plug-in's check must not hide the others
            found.append(Availability(name, False, f"its availability check failed: {err}"))
    return found
