"""``/kfnb/api/studies...``: start a tuning study, read it with its plots, give it more trials.

A study is started through the same facade as Python and the CLI (``kfnb.tuning.tune``: the
search space, objective, algorithm, parameters and backend options are checked there, with the
same errors) and read through the one view every surface shows (``kfnb.tuning.study_view``:
settings, counts per state, best trial, trial rows), with the two plots drawn by
``kfnb.tuning.plots`` (the widget draws the same ones). A local study's runner is a thread of
this server process, like a local run's scheduler; its trials take their kernels from the
server's warm pool. Stop is ``POST runs/{id}/cancel``, as for every run.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join

from kfnb import jsonio
from kfnb.backends import BackendError, get_backend
from kfnb.settings import Settings
from kfnb.tracking import Run, Store
from kfnb.tuning import Study, attach_record, study_view, tune

from .base import KfnbHandler
from .errors import BadRequest
from .paths import ContentsPaths
from .runs import run_view

STUDY_FIELDS = (
    "notebook",
    "space",
    "objective",
    "direction",
    "trials",
    "parallel",
    "algorithm",
    "prune",
    "seed",
    "max_failed",
    "initial",
    "params",
    "param_strings",
    "backend",
    "options",
)
#: Study ids whose plots the server keeps drawn (the least recently read go first).
PLOTS_KEPT = 64


@dataclass(frozen=True)
class StudyRequest:
    """The body of ``POST studies``, checked for shape (``kfnb.tuning.tune`` checks values)."""

    notebook: Any
    space: Any
    settings: dict[str, Any]  # tune()'s keywords: objective, direction, trials, prune...
    params: dict[str, Any]
    param_strings: dict[str, str]
    backend: str
    options: dict[str, Any]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> StudyRequest:
        unknown = sorted(set(body) - set(STUDY_FIELDS))
        if unknown:
            raise BadRequest(
                f"unknown field(s) {', '.join(unknown)} in the study request",
                fix=f"use {', '.join(STUDY_FIELDS)}; the backend's options (cache, "
                'max_parallel...) go in "options"',
            )
        for name in ("objective", "direction", "algorithm"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise BadRequest(
                    f"{name} must be a text, not {type(body[name]).__name__}",
                    fix='e.g. {"objective": "accuracy", "direction": "maximize", '
                    '"algorithm": "tpe"}',
                )
        space = body.get("space")
        if space is not None and not isinstance(space, (dict, list)):
            raise BadRequest(
                f"space must be an object or a list, not {type(space).__name__}",
                fix='map parameter names to ranges, e.g. {"lr": {"float": [0.0001, 0.1], '
                '"log": true}}, or give Katib\'s parameters list',
            )
        backend = body.get("backend") or "local"
        if not isinstance(backend, str):
            raise BadRequest("backend must be a tuning backend name", fix="e.g. 'local'")
        strings = _object(body, "param_strings", "parameter names to texts")
        if not all(isinstance(v, str) for v in strings.values()):
            raise BadRequest(
                "param_strings must map parameter names to texts",
                fix='typed values go in "params"',
            )
        initial = body.get("initial") or []
        if not isinstance(initial, list) or not all(isinstance(p, dict) for p in initial):
            raise BadRequest("initial must be a list of parameter sets", fix='e.g. [{"lr": 0.01}]')
        keywords = ("objective", "direction", "trials", "parallel", "algorithm", "prune")
        return cls(
            notebook=body.get("notebook"),
            space=space,
            settings={
                **{k: body.get(k) for k in (*keywords, "seed", "max_failed")},
                "initial": initial,
            },
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


def added_trials(body: Mapping[str, Any]) -> int:
    """``{"add": N}``: how many trials to add (a positive whole number)."""
    unknown = sorted(set(body) - {"add"})
    if unknown:
        raise BadRequest(
            f"unknown field(s) {', '.join(unknown)} in the request", fix='send {"add": 5}'
        )
    n = body.get("add")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BadRequest(
            f"add must be a positive whole number of trials, not {n!r}", fix='send {"add": 5}'
        )
    return n


def backend_defaults(backend: str, server_options: Mapping[str, Any]) -> dict[str, Any]:
    """The server's kernel-pool settings as defaults of the options of those names that the
    pipeline backend of this name has (trials of a local study run on the local backend); a
    tuning backend the pipeline registry does not know (a cluster's) gets none."""
    try:
        known = {o.name for o in get_backend(backend).options()}
    except BackendError:
        return {}
    return {k: v for k, v in server_options.items() if k in known}


def start_study(
    store: Store,
    settings: Settings,
    os_path: Path,
    request: StudyRequest,
    server_options: Mapping[str, Any],
) -> Run:
    """Start a study of the saved notebook through ``kfnb.tuning.tune`` (no waiting)."""
    defaults = backend_defaults(request.backend, server_options)
    study = tune(
        os_path,
        request.space,
        params=request.params,
        param_strings=list(request.param_strings.items()),
        backend=request.backend,
        options={**defaults, **request.options},
        store=store,
        settings=settings,
        **request.settings,
    )
    return store.get_run(study.id)


def study_record(store: Store, run_id: str) -> Run:
    """The study ``run_id`` names (an id or a unique prefix); 400 for a run of another kind."""
    record = store.get_run(run_id)
    if record.kind != "tune":
        raise BadRequest(
            f"run {record.id} is a {record.kind} run, not a study",
            fix="give the id of a tune run (GET runs?kind=tune lists them)",
        )
    return record


def add_trials(
    store: Store, settings: Settings, run_id: str, n: int, server_options: Mapping[str, Any]
) -> str:
    """Raise the study's budget by ``n`` trials (``Study.add_trials``: a study that ended
    resumes, its runner a thread of this process, on the server's kernel pool); the id."""
    record = study_record(store, run_id)
    study = Study(store, record.id, attach_record(store, record, settings), settings=settings)
    study.add_trials(n, **backend_defaults(record.backend, server_options))
    return record.id


def fingerprint(view: Mapping[str, Any]) -> str:
    """What the plots are drawn from: the study's objective and direction, and each trial's
    number, state, parameters, value and intermediate values."""
    study = view.get("study") or {}
    drawn = [study.get("objective"), study.get("direction")] + [
        [t["number"], t["status"], t["params"], t["value"], t["intermediate"]]
        for t in view["trials"]
    ]
    return hashlib.sha256(jsonio.dumps(drawn).encode()).hexdigest()


class PlotCache:
    """The plots of each study as last drawn, redrawn only when its trials changed, so a
    panel reading the study again and again does not have them drawn each time."""

    def __init__(self, size: int = PLOTS_KEPT) -> None:
        self.size = size
        self.drawn = 0  # how many times plots were drawn (tests read it)
        self._entries: OrderedDict[str, tuple[str, dict[str, str]]] = OrderedDict()
        self._lock = threading.Lock()  # one drawing at a time: no study is drawn twice at once

    def plots(self, view: Mapping[str, Any]) -> dict[str, str]:
        key = fingerprint(view)
        study_id = str(view["id"])
        with self._lock:
            found = self._entries.get(study_id)
            if found is not None and found[0] == key:
                self._entries.move_to_end(study_id)
                return found[1]
            from kfnb.tuning import plots  # matplotlib: imported when a study is first read

            drawn = {
                "history": plots.history_svg(dict(view)),
                "parallel": plots.parallel_svg(dict(view)),
            }
            self.drawn += 1
            self._entries[study_id] = (key, drawn)
            self._entries.move_to_end(study_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return drawn


def served_study(
    store: Store, run_id: str, cache: PlotCache, paths: ContentsPaths
) -> dict[str, Any]:
    """A ``StudyView`` of the contract: the study's view, its notebook as a contents path and
    its plots."""
    record = study_record(store, run_id)
    view = study_view(store, record.id)
    return {
        **view,
        "notebook_path": paths.contents_path(view["notebook"]),
        "plots": cache.plots(view),
    }


class StudyHandlerBase(KfnbHandler):
    @property
    def plot_cache(self) -> PlotCache:
        """The server's one plot cache (in the web application's settings)."""
        cache: PlotCache | None = self.settings.get("kfnb_study_plots")
        if cache is None:
            cache = self.settings.setdefault("kfnb_study_plots", PlotCache())
        return cache


class StudiesHandler(StudyHandlerBase):
    """``POST studies``: start a study of a saved notebook; 201 with its run."""

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        request = StudyRequest.from_body(self.json_body())
        os_path = self.paths.notebook(request.notebook)
        server = self.kfnb_settings
        server_options = {"pool_size": server.pool_size, "preload": list(server.preload)}
        record = await self.blocking(
            start_study, self.store, server.settings(), os_path, request, server_options
        )
        self.set_header(
            "Location", url_path_join(self.base_url, "kfnb", "api", "studies", record.id)
        )
        self.reply(run_view(record, self.paths), 201)


class StudyHandler(StudyHandlerBase):
    """``GET studies/{id}``: the study's view and its plots."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        view = await self.blocking(served_study, self.store, run_id, self.plot_cache, self.paths)
        self.reply(view)


class TrialsHandler(StudyHandlerBase):
    """``POST studies/{id}/trials`` ``{"add": N}``: a bigger budget; the study's view."""

    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        n = added_trials(self.json_body())
        server = self.kfnb_settings
        server_options = {"pool_size": server.pool_size, "preload": list(server.preload)}
        study_id = await self.blocking(
            add_trials, self.store, server.settings(), run_id, n, server_options
        )
        view = await self.blocking(served_study, self.store, study_id, self.plot_cache, self.paths)
        self.reply(view)
