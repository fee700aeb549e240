"""The base of the kfnb REST handlers, the handshake routes and the route table.

The contract is ``server_ext/API.md`` (prose) and ``server_ext/openapi.yaml`` (machine-readable);
the TypeScript side mirrors it in ``labextension/src/api.ts``.

Every route is ``<base_url>/kfnb/api/<name>``, every verb is authenticated and authorized on the
resource ``kfnb``, and every error leaves as a JSON body ``{"code": <HTTP status>, "message":
<what went wrong>}``: exceptions are mapped to statuses in one table, :data:`ERROR_STATUS`, by
:meth:`KfnbHandler.write_error`.

``API_VERSION`` counts breaking changes of this contract; the frontend checks it in its
handshake together with the package version.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

import kfnb
from kfnb.backends import BackendError
from kfnb.errors import KfnbError, NotebookError, PipelineError, SourceError
from kfnb.params import ParameterError
from kfnb.tracking import (
    AmbiguousRunId,
    InvalidTransition,
    RunNotFound,
    StepNotFound,
    Store,
)

from .config import KfnbServerSettings
from .errors import BadRequest, Conflict, NotFound
from .paths import ContentsPaths

API_VERSION = 2

T = TypeVar("T")

#: Exception type -> HTTP status, first match wins. Anything else is a 500 whose message does
#: not leak internals (the traceback goes to the server log). ``tornado.web.HTTPError`` (bad
#: JSON bodies, authentication) keeps its own status.
ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (BadRequest, 400),
    (NotebookError, 400),
    (PipelineError, 400),
    (SourceError, 400),
    (ParameterError, 400),
    (BackendError, 400),
    (AmbiguousRunId, 400),
    (NotFound, 404),
    (RunNotFound, 404),
    (StepNotFound, 404),
    (FileNotFoundError, 404),
    (Conflict, 409),
    (InvalidTransition, 409),
    (KfnbError, 500),
)


def error_status(error: BaseException) -> int | None:
    """The HTTP status an exception maps to, or None when it is not a known kind."""
    for kind, status in ERROR_STATUS:
        if isinstance(error, kind):
            return status
    return None


def dumps(value: Any) -> str:
    """JSON for a response body (values JSON cannot hold, e.g. a ``Path``, as strings)."""
    return json.dumps(value, default=str)


def server_store(settings: dict[str, Any]) -> Store:
    """The server's one run store (``KfnbServerSettings.home``), opened on first use."""
    store: Store | None = settings.get("kfnb_store")
    if store is None:
        store = settings["kfnb"].settings().store()
        settings["kfnb_store"] = store
    return store


class KfnbHandler(APIHandler):
    """Base of all kfnb handlers: JSON in, JSON out, errors as ``{code, message}``."""

    auth_resource = "kfnb"

    @property
    def kfnb_settings(self) -> KfnbServerSettings:
        settings: KfnbServerSettings = self.settings["kfnb"]
        return settings

    @property
    def store(self) -> Store:
        return server_store(self.settings)

    @property
    def paths(self) -> ContentsPaths:
        """Contents paths of this server's root folder (``ContentsManager.root_dir``)."""
        manager = self.contents_manager
        root = getattr(manager, "root_dir", None)
        if not root:
            raise KfnbError(
                "the kfnb extension needs a contents manager with files on disk "
                f"(root_dir); this server uses {type(manager).__name__}"
            )
        return ContentsPaths(str(root), allow_hidden=bool(getattr(manager, "allow_hidden", False)))

    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a worker thread: store reads, parsing, submitting."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    def json_body(self) -> dict[str, Any]:
        """The request's JSON object (bad JSON: 400 from ``get_json_body``)."""
        body = self.get_json_body()
        if body is None:
            raise BadRequest("this request needs a JSON object as its body")
        if not isinstance(body, dict):
            raise BadRequest(f"the body must be a JSON object, not {type(body).__name__}")
        return body

    def int_argument(self, name: str, default: int, low: int, high: int) -> int:
        """An integer query argument within ``[low, high]``."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(f"query argument {name}={raw!r} is not an integer") from None
        if not low <= value <= high:
            raise BadRequest(f"query argument {name}={value} is out of range: use {low} to {high}")
        return value

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(dumps(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        message = self._reason
        if isinstance(error, tornado.web.HTTPError):
            if error.log_message:
                message = error.log_message % error.args if error.args else error.log_message
        elif error is not None:
            mapped = error_status(error)
            if mapped is not None:
                status_code = mapped
                self.set_status(status_code)
                message = str(error)
            else:
                message = "Internal server error; the Jupyter server log has the details."
        self.log.warning("kfnb API error %d: %s", status_code, message)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": status_code, "message": message}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Errors the table maps are the user's (a bad parameter...): no traceback for them."""
        if value is not None and error_status(value) is not None:
            return  # write_error logs the one line
        super().log_exception(typ, value, tb)


class VersionHandler(KfnbHandler):
    """``GET /kfnb/api/version``: the installed kfnb version and the REST contract version."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        self.reply({"version": kfnb.__version__, "api": API_VERSION})


class PoolHandler(KfnbHandler):
    """``GET /kfnb/api/pool``: the warm kernel pool of this server."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        from kfnb.kernels import shared_pool_stats

        self.reply(shared_pool_stats())


def setup_handlers(web_app: tornado.web.Application) -> str:
    """Add kfnb's routes to the Jupyter web application; return their common URL prefix."""
    from .backends import BackendsHandler
    from .events import EventsHandler
    from .pipelines import PipelineHandler
    from .runs import (
        CancelHandler,
        MetricsHandler,
        RunHandler,
        RunsHandler,
        StepLogHandler,
        StepNotebookHandler,
    )

    prefix: str = url_path_join(web_app.settings.get("base_url", "/"), "kfnb", "api")
    part = r"([^/]+)"
    routes: list[tuple[str, type[KfnbHandler]]] = [
        (url_path_join(prefix, "version"), VersionHandler),
        (url_path_join(prefix, "pool"), PoolHandler),
        (url_path_join(prefix, "pipeline"), PipelineHandler),
        (url_path_join(prefix, "backends"), BackendsHandler),
        (url_path_join(prefix, "runs"), RunsHandler),
        (url_path_join(prefix, "runs", part), RunHandler),
        (url_path_join(prefix, "runs", part, "cancel"), CancelHandler),
        (url_path_join(prefix, "runs", part, "metrics"), MetricsHandler),
        (url_path_join(prefix, "runs", part, "steps", part, "log"), StepLogHandler),
        (url_path_join(prefix, "runs", part, "steps", part, "notebook"), StepNotebookHandler),
        (url_path_join(prefix, "events"), EventsHandler),
    ]
    web_app.add_handlers(".*$", routes)
    return prefix
