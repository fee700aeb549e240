"""``/kfnb/api/runs...``: start, list, read and cancel runs; step logs and executed notebooks.

Runs are started through the same facade as the CLI (``kfnb.run``) and read from the server's
run store, so the panel, ``kfnb runs`` and ``kfnb.get_run`` see the same runs. A local run goes
on in this server process (scheduler threads, the server's warm kernel pool): it outlives the
browser tab, not the server.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join

import kfnb
from kfnb.backends import get_backend
from kfnb.dag import Pipeline
from kfnb.errors import KfnbError
from kfnb.params import resolve_params
from kfnb.tracking import TERMINAL_STEP, Run, Store
from kfnb.tracking.models import RUN_STATUSES

from .errors import BadRequest, Conflict
from .handlers import KfnbHandler
from .paths import ContentsPaths

RUN_FIELDS = {"path", "params", "backend", "max_parallel", "cache"}
LOG_LIMIT = 65536
LOG_LIMIT_MAX = 4 * 1024 * 1024


def run_view(record: Run, paths: ContentsPaths) -> dict[str, Any]:
    """A ``Run`` of the contract: the store's record plus the notebook as a contents path."""
    return {**record.to_dict(), "notebook_path": paths.contents_path(record.notebook)}


def start_run(
    store: Store, os_path: Path, params: dict[str, Any], backend: str, options: dict[str, Any]
) -> Run:
    """Parse the saved notebook, check the parameter values and submit (no waiting)."""
    cls = get_backend(backend)  # an unknown backend fails before the notebook is read
    pipeline = Pipeline.from_notebook(os_path)
    typed: dict[str, Any] = {}
    strings: list[tuple[str, str]] = []
    for name, value in params.items():
        param = pipeline.parameters.get(name)
        if isinstance(value, str) and param is not None and param.type not in ("str", "any"):
            strings.append((name, value))  # typed into a text field: read it like `-p NAME V`
        else:
            typed[name] = value
    values = resolve_params(pipeline, typed, strings)
    config = cls.config_class
    known = (
        {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else set()
    )  # the options this backend's config has (max_parallel is local's only)
    usable = {k: v for k, v in options.items() if k in known and v is not None}
    result = kfnb.run(pipeline, values, backend=backend, wait=False, store=store, **usable)
    return result.record


def cancel_run(store: Store, run_id: str) -> Run:
    record = store.get_run(run_id)
    if record.done:
        raise Conflict(
            f"run {record.id} already ended ({record.status}); there is nothing to cancel"
        )
    get_backend(record.backend)().attach(store, record.id).cancel()
    return store.get_run(record.id)


def read_log(path: str | None, offset: int, limit: int, ended: bool) -> dict[str, Any]:
    """Up to ``limit`` bytes of the log from byte ``offset``; a UTF-8 character cut by the
    limit is left for the next page."""
    data = b""
    size = 0
    if path:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(offset)
                data = f.read(limit)
        except FileNotFoundError:
            pass
    end = offset + len(data)
    last = ended and end >= size
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=last)
    pending = len(decoder.getstate()[0])
    if pending and not last:
        end -= pending
    return {"text": text, "offset": end, "done": last and end >= size}


def copy_notebook(source: str | None, target: Path, run_id: str, step: str) -> None:
    """Copy an executed notebook (maybe still being written) to ``target``, read-only."""
    if not source or not os.path.isfile(source):
        raise Conflict(
            f"step {step!r} of run {run_id} has no executed notebook (it has not "
            "run, or was cached or skipped without one)"
        )
    for attempt in range(5):
        data = Path(source).read_bytes()
        try:
            json.loads(data)
            break
        except ValueError:  # the step is saving it right now
            if attempt == 4:
                raise Conflict(
                    f"the executed notebook of step {step!r} is being written; try again"
                ) from None
            time.sleep(0.1)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class RunsHandler(KfnbHandler):
    """``GET runs`` (a page of runs, filtered) and ``POST runs`` (start one)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        notebook = self.get_query_argument("notebook", None)
        os_path = self.paths.resolve(notebook) if notebook else None
        statuses = [
            s for raw in self.get_query_arguments("status") for s in raw.split(",") if s.strip()
        ]
        statuses = [s.strip().upper() for s in statuses]
        for status in statuses:
            if status not in RUN_STATUSES:
                raise BadRequest(
                    f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}"
                )
        limit = self.int_argument("limit", 20, 1, 1000)
        offset = self.int_argument("offset", 0, 0, 2**31)
        filters: dict[str, Any] = {"notebook": os_path, "status": statuses or None}
        records = await self.blocking(self.store.list_runs, limit=limit, offset=offset, **filters)
        total = await self.blocking(self.store.count_runs, **filters)
        paths = self.paths
        self.reply({"runs": [run_view(r, paths) for r in records], "total": total})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        unknown = sorted(set(body) - RUN_FIELDS)
        if unknown:
            raise BadRequest(
                f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(RUN_FIELDS))}"
            )
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise BadRequest("params must be an object of parameter names to values")
        backend = body.get("backend") or "local"
        if not isinstance(backend, str):
            raise BadRequest("backend must be a backend name, e.g. 'local'")
        max_parallel = body.get("max_parallel")
        if max_parallel is not None and (
            not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or max_parallel < 1
        ):
            raise BadRequest("max_parallel must be a positive integer or null")
        cache = body.get("cache", True)
        if not isinstance(cache, bool):
            raise BadRequest("cache must be true or false")
        os_path = self.paths.notebook(body.get("path"))
        settings = self.kfnb_settings
        options = {
            "max_parallel": max_parallel,
            "cache": cache,
            "pool_size": settings.pool_size,
            "preload": tuple(settings.preload),
        }
        record = await self.blocking(start_run, self.store, os_path, params, backend, options)
        self.set_header("Location", url_path_join(self.base_url, "kfnb", "api", "runs", record.id))
        self.reply(run_view(record, self.paths), 201)


class RunHandler(KfnbHandler):
    """``GET runs/{id}`` (an id or a unique prefix of one)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        record = await self.blocking(self.store.get_run, run_id)
        self.reply(run_view(record, self.paths))


class CancelHandler(KfnbHandler):
    """``POST runs/{id}/cancel``: 202 with the run (CANCELING or CANCELED); 409 if it ended."""

    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        record = await self.blocking(cancel_run, self.store, run_id)
        self.reply(run_view(record, self.paths), 202)


class MetricsHandler(KfnbHandler):
    """``GET runs/{id}/metrics``: every logged value, oldest first."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        metrics = await self.blocking(self.store.metrics, run_id)
        self.reply({"metrics": [m.to_dict() for m in metrics]})


class StepLogHandler(KfnbHandler):
    """``GET runs/{id}/steps/{step}/log?offset=0&limit=65536``: a page of the step's log."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str, step: str) -> None:
        offset = self.int_argument("offset", 0, 0, 2**62)
        limit = self.int_argument("limit", LOG_LIMIT, 1, LOG_LIMIT_MAX)
        record = await self.blocking(self.store.get_run, run_id)
        found = record.step(step)
        page = await self.blocking(
            read_log, found.log, offset, limit, found.status in TERMINAL_STEP
        )
        self.reply(page)


class StepNotebookHandler(KfnbHandler):
    """``POST runs/{id}/steps/{step}/notebook``: a read-only copy of the executed notebook in
    the server root, to open in JupyterLab; 201 ``{"path": P}``."""

    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str, step: str) -> None:
        record = await self.blocking(self.store.get_run, run_id)
        found = record.step(step)
        paths = self.paths
        target = Path(
            paths.root,
            *Path(self.kfnb_settings.executed_dir).parts,
            record.id,
            f"{found.name}.ipynb",
        )
        if not paths.inside(target):  # `..` in the setting, or a symlink leading out
            raise KfnbError(
                f"KfnbServerSettings.executed_dir {self.kfnb_settings.executed_dir!r}"
                " leads outside the server root. Fix: name a folder inside it"
            )
        await self.blocking(copy_notebook, found.output_notebook, target, record.id, found.name)
        self.reply({"path": paths.contents_path(target)}, 201)
