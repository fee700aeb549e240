"""The base of the kfnb REST handlers: one handler class, one error table, one JSON encoding.

The contract is ``server_ext/API.md`` (prose) and ``server_ext/openapi.yaml`` (machine-readable);
the TypeScript side mirrors it in ``labextension/src/api.ts``. The resource modules
(``handshake``, ``pipelines``, ``backends``, ``runs``, ``studies``, ``events``) import this module
(``studies`` also ``runs``, whose ``Run`` it answers); ``routes`` imports them and builds the
route table, so nothing imports in a circle.

Every route is ``<base_url>/kfnb/api/<name>``, every verb is authenticated and authorized on the
resource ``kfnb``, and every error leaves as one JSON body ``{"code", "message", "fix",
"where"}`` (plus ``cell_index`` and ``cell_line`` for an error located at a notebook cell):
exceptions are mapped to statuses in one table, :data:`ERROR_STATUS`, and the body is read from
the error's attributes (``KfnbError.to_dict()``), never parsed out of its text.

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
from jupyter_server.base.handlers import APIHandler

from kfnb import jsonio
from kfnb.backends import BackendError
from kfnb.errors import KfnbError, NotebookError, NotResumable, PipelineError, SourceError
from kfnb.params import ParameterError
from kfnb.tracking import (
    AmbiguousRunId,
    InvalidTransition,
    RunNotFound,
    StepNotFound,
    Store,
    StoreDiskFull,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
)
from kfnb.tuning.space import SpaceError

from .config import KfnbServerSettings
from .errors import BadRequest, Conflict, Forbidden, NotFound
from .paths import ContentsPaths

#: 3: errors carry ``fix`` and ``where`` apart from ``message``; runs carry their pipeline;
#: ``POST runs`` takes backend ``options`` and ``param_strings``. 4: served layouts and cells.
#: 5: tuning studies (``studies``), the run status PRUNED.
API_VERSION = 5

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
    (SpaceError, 400),
    (AmbiguousRunId, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (RunNotFound, 404),
    (StepNotFound, 404),
    (FileNotFoundError, 404),
    (Conflict, 409),
    (InvalidTransition, 409),
    (NotResumable, 409),
    (StoreDiskFull, 507),  # the run store's disk is full: the message names it and the fix
    (StoreReadOnly, 503),  # the store cannot be written (a read-only mount, another user's)
    (StoreUnavailable, 503),
    (StoreLocked, 503),
    (KfnbError, 500),
)

INTERNAL = "Internal server error; the Jupyter server log has the details."


def error_status(error: BaseException) -> int | None:
    """The HTTP status an exception maps to, or None when it is not a known kind."""
    for kind, status in ERROR_STATUS:
        if isinstance(error, kind):
            return status
    return None


def error_body(status: int, error: BaseException | None, reason: str) -> dict[str, Any]:
    """The JSON body of an error response: ``{code, message, fix, where}`` from the error's
    attributes, plus ``cell_index`` and ``cell_line`` when it names a notebook cell."""
    body: dict[str, Any] = {"code": status, "message": reason, "fix": None, "where": None}
    if isinstance(error, tornado.web.HTTPError):
        if error.log_message:
            text = error.log_message % error.args if error.args else error.log_message
            body["message"] = text
    elif isinstance(error, KfnbError) and error_status(error) is not None:
        found = error.to_dict()
        body.update(message=found["message"], fix=found["fix"], where=found["where"])
        if isinstance(error, NotebookError):
            body.update(cell_index=error.cell_index, cell_line=error.cell_line)
    elif error is not None:
        body["message"] = str(error) if error_status(error) is not None else INTERNAL
    return body


def dumps(value: Any) -> str:
    """JSON for a response body: ``kfnb.jsonio.dumps`` (NaN -> null, paths as strings). Text
    that UTF-8 cannot carry (a lone surrogate a request sent, quoted back in a message) is
    written as a JSON escape instead of failing the response."""
    text = jsonio.dumps(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(json.loads(text), ensure_ascii=True, allow_nan=False)
    return text


def server_store(settings: dict[str, Any]) -> Store:
    """The server's one run store (``KfnbServerSettings.home``), opened on first use."""
    store: Store | None = settings.get("kfnb_store")
    if store is None:
        store = settings["kfnb"].settings().store()
        settings["kfnb_store"] = store
    return store


class KfnbHandler(APIHandler):
    """Base of all kfnb handlers: JSON in, JSON out, errors as ``{code, message, fix, where}``."""

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
                "the kfnb extension needs a contents manager with files on disk (root_dir); "
                f"this server uses {type(manager).__name__}",
                fix="run Jupyter with a file contents manager",
            )
        return ContentsPaths(str(root), allow_hidden=bool(getattr(manager, "allow_hidden", False)))

    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a worker thread: store reads, parsing, submitting."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    def get_json_body(self) -> Any:
        """The request's body read as JSON (None when empty): a 400 for a body that is no UTF-8
        text, no JSON, or JSON nested too deep to read; never a 500."""
        raw = self.request.body.strip()
        if not raw:
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise BadRequest(
                f"the body is not UTF-8 text (byte {err.start} is not)",
                fix="send the body as JSON in UTF-8",
            ) from None
        try:
            return json.loads(text)
        except RecursionError:
            raise BadRequest(
                "the JSON body is nested too deeply to read",
                fix="send the notebook and the values as they are, not wrapped in thousands "
                "of lists or objects",
            ) from None
        except ValueError as err:
            raise BadRequest(
                f"the body is not valid JSON: {err}", fix='send a JSON object, e.g. {"path": P}'
            ) from None

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
            raise BadRequest(
                f"query argument {name}={value} is out of range", fix=f"use {low} to {high}"
            )
        return value

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(dumps(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        mapped = None if error is None else error_status(error)
        if mapped is not None and not isinstance(error, tornado.web.HTTPError):
            status_code = mapped
            self.set_status(status_code)
        body = error_body(status_code, error, self._reason)
        self.log.warning("kfnb API error %d: %s", status_code, body["message"])
        self.set_header("Content-Type", "application/json")
        self.finish(dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Errors the table maps are the user's (a bad parameter...): no traceback for them."""
        if value is not None and error_status(value) is not None:
            return  # write_error logs the one line
        super().log_exception(typ, value, tb)
