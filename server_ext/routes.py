"""The route table of the kfnb REST API: which handler serves which URL.

Every route is ``<base_url>/kfnb/api/<name>``; ``openapi.yaml`` documents the same routes
(``tests/server/test_contract.py`` checks that the two agree). This module imports the resource
modules; they import ``base`` (and ``errors``, ``paths``), ``cells`` reads a notebook model as
``pipelines`` does and ``studies`` answers a ``Run`` as ``runs`` does; nothing imports in a
circle.
"""

from __future__ import annotations

import tornado.web
from jupyter_server.utils import url_path_join

from .backends import BackendsHandler
from .base import KfnbHandler
from .cells import CellStepHandler
from .events import EventsHandler
from .handshake import PoolHandler, VersionHandler
from .pipelines import PipelineHandler
from .runs import (
    CancelHandler,
    MetricsHandler,
    RunHandler,
    RunsHandler,
    StepLogHandler,
    StepNotebookHandler,
)
from .studies import StudiesHandler, StudyHandler, TrialsHandler

PART = r"([^/]+)"

#: URL under ``kfnb/api`` (segments; ``PART`` is a path argument) -> handler.
ROUTES: tuple[tuple[tuple[str, ...], type[KfnbHandler]], ...] = (
    (("version",), VersionHandler),
    (("pool",), PoolHandler),
    (("pipeline",), PipelineHandler),
    (("cells", "step"), CellStepHandler),
    (("backends",), BackendsHandler),
    (("runs",), RunsHandler),
    (("runs", PART), RunHandler),
    (("runs", PART, "cancel"), CancelHandler),
    (("runs", PART, "metrics"), MetricsHandler),
    (("runs", PART, "steps", PART, "log"), StepLogHandler),
    (("runs", PART, "steps", PART, "notebook"), StepNotebookHandler),
    (("studies",), StudiesHandler),
    (("studies", PART), StudyHandler),
    (("studies", PART, "trials"), TrialsHandler),
    (("events",), EventsHandler),
)


def setup_handlers(web_app: tornado.web.Application) -> str:
    """Add kfnb's routes to the Jupyter web application; return their common URL prefix."""
    prefix: str = url_path_join(web_app.settings.get("base_url", "/"), "kfnb", "api")
    routes = [(url_path_join(prefix, *parts), handler) for parts, handler in ROUTES]
    web_app.add_handlers(".*$", routes)
    return prefix
