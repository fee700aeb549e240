"""``/kfnb/api/runs...``: start, list, read and cancel runs; step logs and executed notebooks.

Runs are started through the same facade as the CLI (``kfnb.run``: backend options, parameter
values and texts are checked there, with the same errors) and read from the server's run store,
so the panel, ``kfnb runs`` and ``kfnb.get_run`` see the same runs. A run answers with the
pipeline it ran, as stored when it was submitted, never the notebook's current state. A local
run goes on in this server process (scheduler threads, the server's warm kernel pool): it
outlives the browser tab, not the server.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join

import kfnb
from kfnb.backends import LOG_PAGE, RunView, get_backend
from kfnb.handles import attach
from kfnb.layout import with_layout
from kfnb.retention import disk_usage, run_bytes
from kfnb.settings import Settings
from kfnb.tracking import Run, Store
from kfnb.tracking.models import RUN_KINDS, RUN_STATUSES

from .base import KfnbHandler
from .errors import BadRequest, Conflict, Forbidden
from .paths import ContentsPaths, shown

RUN_FIELDS = ("path", "params", "param_strings", "backend", "options")
LOG_LIMIT_MAX = 4 * 1024 * 1024


@dataclass(frozen=True)
class RunRequest:
    """The body of ``POST runs``, checked for shape (the values are checked by ``kfnb.run``)."""

    path: Any
    params: dict[str, Any]
    param_strings: dict[str, str]
    backend: str
    options: dict[str, Any]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RunRequest:
        unknown = sorted(set(body) - set(RUN_FIELDS))
        if unknown:
            raise BadRequest(
                f"unknown field(s) {', '.join(unknown)} in the run request",
                fix=f"use {', '.join(RUN_FIELDS)}; a backend's options (max_parallel, cache...) "
                'go in "options", e.g. {"options": {"cache": false}}',
            )
        backend = body.get("backend") or "local"
        if not isinstance(backend, str):
            raise BadRequest("backend must be a backend name", fix="e.g. 'local'")
        strings = _object(body, "param_strings", "parameter names to texts")
        if not all(isinstance(v, str) for v in strings.values()):
            raise BadRequest(
                "param_strings must map parameter names to texts",
                fix='typed values go in "params"',
            )
        return cls(
            path=body.get("path"),
            params=_object(body, "params", "parameter names to values"),
            param_strings=strings,
            backend=backend,
            options=_object(body, "options", "backend option names to values"),
        )


def _object(body: Mapping[str, Any], name: str, what: str) -> dict[str, Any]:
    value = body.get(name) or {}
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be an object of {what}")
    return value


def run_view(record: Run, paths: ContentsPaths, disk_bytes: int | None = None) -> dict[str, Any]:
    """A ``Run`` of the contract: the store's record, the notebook as a contents path, and the
    pipeline the run ran (``pipeline``, lifted out of its stored ``spec``, with its layout:
    computed here, never stored). ``disk_bytes``, the size of its artifacts folder
    (``kfnb.retention.run_bytes``, measured in a worker thread), where the answer carries it:
    the run lists and ``GET runs/{id}``."""
    view = record.to_dict()
    spec = view.pop("spec", None)
    rest = {k: v for k, v in spec.items() if k != "pipeline"} if isinstance(spec, dict) else None
    return {
        **view,
        "spec": rest,
        "pipeline": with_layout(record.pipeline),
        "notebook_path": paths.contents_path(record.notebook),
        **({} if disk_bytes is None else {"disk_bytes": disk_bytes}),
    }


def start_run(
    store: Store,
    settings: Settings,
    os_path: Path,
    request: RunRequest,
    server_options: Mapping[str, Any],
) -> Run:
    """Submit the saved notebook through ``kfnb.run`` (no waiting): it checks the backend, its
    options, the notebook and the parameter values, as for the CLI and Python."""
    known = {o.name for o in get_backend(request.backend).options()}
    defaults = {k: v for k, v in server_options.items() if k in known}
    result = kfnb.run(
        os_path,
        request.params,
        backend=request.backend,
        wait=False,
        store=store,
        settings=settings,
        param_strings=list(request.param_strings.items()),
        **{**defaults, **request.options},
    )
    return result.record


def cancel_run(store: Store, settings: Settings, run_id: str) -> Run:
    record = store.get_run(run_id)
    if record.done:
        raise Conflict(
            f"run {record.id} already ended ({record.status}); there is nothing to cancel"
        )
    attach(store, record.id, settings).cancel()
    return store.get_run(record.id)


def copy_target(paths: ContentsPaths, folder: str, record: Run, step: str) -> Path:
    """Where the copy of ``step``'s executed notebook goes: ``<folder>/<run id>/<step>.ipynb``
    in the server root (``folder``: ``KfnbServerSettings.executed_dir``). Refused (403) for a
    run whose notebook is not inside the root (a CLI run elsewhere: its artifacts stay out of
    this root), for a ``folder`` leading out of the root, and for a symlink on the way to the
    copy that leads out of the root (nothing is ever written outside it)."""
    if not record.notebook or not paths.inside(record.notebook):
        raise Forbidden(
            f"the notebook of run {record.id} ({record.notebook or 'none recorded'}) is outside "
            "this Jupyter server's root folder; the executed notebooks of such a run are not "
            "copied into the root",
            fix="open the step's output_notebook (GET runs/{id}) where it lies, or start "
            "Jupyter with a root folder that holds the run's notebook",
            where=f"run {record.id}",
        )
    for name in (record.id, step):  # from the store; still, never a path
        if name in ("", ".", "..") or "/" in name or os.sep in name or "\0" in name:
            raise Forbidden(
                f"{shown(name)} cannot name a file of the copy",
                fix="copy the executed notebook of a run and step that kfnb named",
                where=f"run {record.id}",
            )
    root = Path(paths.root)
    target = Path(os.path.normpath(root.joinpath(folder, record.id, f"{step}.ipynb")))
    if not target.is_relative_to(root):
        raise Forbidden(
            f"KfnbServerSettings.executed_dir {folder!r} leads outside the server root",
            fix="name a folder inside it, e.g. 'kfnb-runs'",
            where="KfnbServerSettings.executed_dir",
        )
    current = root
    for part in target.relative_to(root).parts:
        current = current / part
        if not paths.inside(current):  # a symlink leading out (one within the root is fine)
            named = "/".join(current.relative_to(root).parts)
            raise Forbidden(
                f"{shown(named)} in the server root is a symlink leading outside it; kfnb "
                "writes copies of executed notebooks inside the root only",
                fix=f"remove the symlink {named}, or set KfnbServerSettings.executed_dir to a "
                "folder inside the root",
                where=named,
            )
    return target


def copy_notebook(
    source: str | None,
    target: Path,
    run_id: str,
    step: str,
    recheck: Callable[[], object] | None = None,
) -> None:
    """Copy an executed notebook (maybe still being written) to ``target``, read-only;
    ``recheck()`` runs once its folders exist, before anything is written into them."""
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
    if recheck is not None:  # a symlink made since the first check
        recheck()
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
        filters = self.run_filters()
        limit = self.int_argument("limit", 20, 1, 1000)
        offset = self.int_argument("offset", 0, 0, 2**31)
        records = await self.blocking(self.store.list_runs, limit=limit, offset=offset, **filters)
        total = await self.blocking(self.store.count_runs, **filters)
        sizes = await self.blocking(disk_usage, records)
        paths = self.paths
        self.reply({"runs": [run_view(r, paths, sizes[r.id]) for r in records], "total": total})

    def run_filters(self) -> dict[str, Any]:
        """The store filters of ``GET runs``: ``notebook``, ``status``, ``kind``, ``parent``
        (the children of a run), ``roots`` (runs without a parent)."""
        notebook = self.get_query_argument("notebook", None)
        statuses = [
            s.strip().upper()
            for raw in self.get_query_arguments("status")
            for s in raw.split(",")
            if s.strip()
        ]
        for status in statuses:
            if status not in RUN_STATUSES:
                raise BadRequest(
                    f"unknown run status {status!r}", fix=f"use one of {', '.join(RUN_STATUSES)}"
                )
        kind = self.get_query_argument("kind", None) or None
        if kind is not None and kind not in RUN_KINDS:
            raise BadRequest(f"unknown run kind {kind!r}", fix=f"use one of {', '.join(RUN_KINDS)}")
        parent = self.get_query_argument("parent", None) or None
        roots = self.flag_argument("roots")
        if parent is not None and roots:
            raise BadRequest(
                "a run list cannot show both the children of a run and top-level runs only",
                fix="give parent or roots, not both",
            )
        return {
            "notebook": self.paths.resolve(notebook) if notebook else None,
            "status": statuses or None,
            "kind": kind,
            "parent_id": parent,
            "roots_only": roots,
        }

    def flag_argument(self, name: str) -> bool:
        """A yes/no query argument: ``1``/``true`` or ``0``/``false`` (absent: no)."""
        raw = (self.get_query_argument(name, None) or "0").strip().lower()
        if raw not in ("0", "1", "true", "false"):
            raise BadRequest(f"query argument {name}={raw!r} is not a flag", fix="use 1 or 0")
        return raw in ("1", "true")

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        request = RunRequest.from_body(self.json_body())
        os_path = self.paths.notebook(request.path)
        server = self.kfnb_settings
        server_options = {"pool_size": server.pool_size, "preload": list(server.preload)}
        record = await self.blocking(
            start_run, self.store, server.settings(), os_path, request, server_options
        )
        self.set_header("Location", url_path_join(self.base_url, "kfnb", "api", "runs", record.id))
        self.reply(run_view(record, self.paths), 201)


class RunHandler(KfnbHandler):
    """``GET runs/{id}`` (an id or a unique prefix of one). Its children (``child_count`` of
    them) are listed by ``GET runs?parent={id}``."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        record = await self.blocking(self.store.get_run, run_id)
        size = await self.blocking(run_bytes, record)
        self.reply(run_view(record, self.paths, size))


class CancelHandler(KfnbHandler):
    """``POST runs/{id}/cancel``: 202 with the run (CANCELING or CANCELED); 409 if it ended."""

    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        settings = self.kfnb_settings.settings()
        record = await self.blocking(cancel_run, self.store, settings, run_id)
        self.reply(run_view(record, self.paths), 202)


class MetricsHandler(KfnbHandler):
    """``GET runs/{id}/metrics``: every logged value, oldest first."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        metrics = await self.blocking(self.store.metrics, run_id)
        self.reply({"metrics": [m.to_dict() for m in metrics]})


class StepLogHandler(KfnbHandler):
    """``GET runs/{id}/steps/{step}/log?offset=0&limit=65536``: a page of the step's log, read
    by ``RunView.read_log`` (the same paging as the CLI and the widgets)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str, step: str) -> None:
        offset = self.int_argument("offset", 0, 0, 2**62)
        limit = self.int_argument("limit", LOG_PAGE, 1, LOG_LIMIT_MAX)
        page = await self.blocking(RunView(self.store, run_id).read_log, step, offset, limit)
        self.reply(page.to_dict())


class StepNotebookHandler(KfnbHandler):
    """``POST runs/{id}/steps/{step}/notebook``: a read-only copy of the executed notebook in
    the server root, to open in JupyterLab; 201 ``{"path": P}``; 403 where ``copy_target``
    refuses."""

    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str, step: str) -> None:
        record = await self.blocking(self.store.get_run, run_id)
        found = record.step(step)
        paths = self.paths
        folder = self.kfnb_settings.executed_dir
        target = await self.blocking(copy_target, paths, folder, record, found.name)
        await self.blocking(
            copy_notebook,
            found.output_notebook,
            target,
            record.id,
            found.name,
            functools.partial(copy_target, paths, folder, record, found.name),
        )
        self.reply({"path": paths.contents_path(target)}, 201)
