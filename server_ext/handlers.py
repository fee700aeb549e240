"""REST handlers of the kfnb server extension; the contract is mirrored in
``labextension/src/api.ts``.

Every route is ``<base_url>/kfnb/api/<name>``, every verb is authenticated, and every error
leaves as a JSON body ``{"code": <HTTP status>, "message": <what went wrong>}``: exceptions are
mapped to statuses in one table, :data:`ERROR_STATUS`, by :meth:`KfnbHandler.write_error`.

``API_VERSION`` counts breaking changes of this contract; the frontend checks it in its
handshake together with the package version.
"""

from __future__ import annotations

import json
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

import kfnb
from kfnb.errors import KfnbError, NotebookError, PipelineError, SourceError

from .config import KfnbServerSettings

API_VERSION = 1

#: Exception type -> HTTP status, first match wins. Anything else is a 500 whose message does
#: not leak internals (the traceback goes to the server log).
ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (NotebookError, 400),
    (PipelineError, 400),
    (SourceError, 400),
    (FileNotFoundError, 404),
    (KfnbError, 500),
)


def error_status(error: BaseException) -> int | None:
    """The HTTP status an exception maps to, or None when it is not a known kind."""
    for kind, status in ERROR_STATUS:
        if isinstance(error, kind):
            return status
    return None


class KfnbHandler(APIHandler):
    """Base of all kfnb handlers: JSON in, JSON out, errors as ``{code, message}``."""

    @property
    def kfnb_settings(self) -> KfnbServerSettings:
        settings: KfnbServerSettings = self.settings["kfnb"]
        return settings

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


class VersionHandler(KfnbHandler):
    """``GET /kfnb/api/version``: the installed kfnb version and the REST contract version."""

    @tornado.web.authenticated
    def get(self) -> None:
        self.finish(json.dumps({"version": kfnb.__version__, "api": API_VERSION}))


class PoolHandler(KfnbHandler):
    """``GET /kfnb/api/pool``: the warm kernel pool of this server."""

    @tornado.web.authenticated
    def get(self) -> None:
        from kfnb.kernels import shared_pool_stats

        self.finish(json.dumps(shared_pool_stats()))


def setup_handlers(web_app: tornado.web.Application) -> str:
    """Add kfnb's routes to the Jupyter web application; return their common URL prefix."""
    prefix: str = url_path_join(web_app.settings.get("base_url", "/"), "kfnb", "api")
    routes: list[tuple[str, type[KfnbHandler]]] = [
        (url_path_join(prefix, "version"), VersionHandler),
        (url_path_join(prefix, "pool"), PoolHandler),
    ]
    web_app.add_handlers(".*$", routes)
    return prefix
