"""Errors leave the kfnb REST API in one shape: ``{"code": <status>, "message": <text>}``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tornado.web
from jupyter_server.utils import url_path_join
from tornado.httpclient import HTTPClientError, HTTPResponse
from tornado.web import HTTPError

from kfnb.errors import KfnbError, NotebookError, PipelineError
from kfnb.server_ext.handlers import KfnbHandler

Fetch = Callable[..., Awaitable[HTTPResponse]]

CASES = [
    pytest.param(PipelineError("cycle: a -> b -> a"), 400, "cycle: a -> b -> a", id="pipeline"),
    pytest.param(NotebookError("unknown step", cell_index=3), 400, "cell 3: unknown step", id="nb"),
    pytest.param(FileNotFoundError("no such run"), 404, "no such run", id="not-found"),
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
