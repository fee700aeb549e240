"""Errors leave the kfnb REST API in one shape: ``{"code": <status>, "message": <text>}``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado.httpclient import HTTPClientError, HTTPResponse
from tornado.web import HTTPError

from kfnb.backends import BackendError
from kfnb.errors import KfnbError, NotebookError, PipelineError
from kfnb.params import ParameterError
from kfnb.server_ext.errors import BadRequest, Conflict, NotFound
from kfnb.server_ext.handlers import KfnbHandler
from kfnb.tracking import AmbiguousRunId, InvalidTransition, RunNotFound, StepNotFound

Fetch = Callable[..., Awaitable[HTTPResponse]]

CASES = [
    pytest.param(PipelineError("cycle: a -> b -> a"), 400, "cycle: a -> b -> a", id="pipeline"),
    pytest.param(NotebookError("unknown step", cell_index=3), 400, "cell 3: unknown step", id="nb"),
    pytest.param(FileNotFoundError("no such run"), 404, "no such run", id="not-found"),
    pytest.param(ParameterError("parameter 'n' is an int"), 400, "parameter 'n'", id="param"),
    pytest.param(BackendError("unknown backend 'x'"), 400, "unknown backend", id="backend"),
    pytest.param(BadRequest("cache must be true"), 400, "cache must be", id="bad-request"),
    pytest.param(AmbiguousRunId("2025", ["a", "b"]), 400, "run id prefix", id="ambiguous"),
    pytest.param(RunNotFound("r9"), 404, "no run with id 'r9'", id="run"),
    pytest.param(StepNotFound("r1", "trian", ["train"]), 404, "run r1 has no step", id="step"),
    pytest.param(NotFound("no notebook at 'x.ipynb'"), 404, "no notebook", id="path"),
    pytest.param(Conflict("run r1 already ended"), 409, "run r1 already", id="conflict"),
    pytest.param(InvalidTransition("r1", "SUCCEEDED", "RUNNING"), 409, "run r1", id="state"),
    pytest.param(HTTPError(409, "run %s is busy", "r1"), 409, "run r1 is busy", id="http"),
    pytest.param(HTTPError(404), 404, "Not Found", id="http-bare"),
    pytest.param(KfnbError("kfnb broke"), 500, "kfnb broke", id="kfnb-error"),
    pytest.param(RuntimeError("secret internals"), 500, "Internal server error", id="other"),
]


@pytest.mark.parametrize(("error", "status", "message"), CASES)
async def test_errors_map_to_json_bodies(
    jp_fetch: Fetch,
    jp_serverapp: Any,
    jp_base_url: str,
    error: BaseException,
    status: int,
    message: str,
) -> None:
    class Failing(KfnbHandler):
        @tornado.web.authenticated
        @authorized
        def get(self) -> None:
            raise error

    route = url_path_join(jp_base_url, "kfnb", "api", "test-failing")
    jp_serverapp.web_app.add_handlers(".*$", [(route, Failing)])

    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("kfnb", "api", "test-failing")

    response = caught.value.response
    assert response is not None
    assert caught.value.code == status
    assert response.headers["Content-Type"].startswith("application/json")
    body = json.loads(response.body)
    assert body["code"] == status
    assert body["message"].startswith(message)
    assert "secret internals" not in body["message"]
