"""Errors leave the kfnb REST API in one shape: ``{"code", "message", "fix", "where"}`` (plus
``cell_index`` and ``cell_line`` for an error at a notebook cell), read from the error's
attributes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tornado.web
from api_client import component, load_contract, validate
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado.httpclient import HTTPClientError, HTTPResponse
from tornado.web import HTTPError

from kfnb.backends import BackendError
from kfnb.errors import KfnbError, NotebookError, PipelineError
from kfnb.params import ParameterError
from kfnb.server_ext.base import KfnbHandler
from kfnb.server_ext.errors import BadRequest, Conflict, NotFound
from kfnb.tracking import AmbiguousRunId, InvalidTransition, RunNotFound, StepNotFound

Fetch = Callable[..., Awaitable[HTTPResponse]]
CONTRACT = load_contract()

CASES = [
    pytest.param(PipelineError("cycle: a -> b -> a"), 400, "cycle: a -> b -> a", id="pipeline"),
    pytest.param(NotebookError("unknown step", cell_index=3), 400, "unknown step", id="nb"),
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


def failing_route(jp_serverapp: Any, jp_base_url: str, error: BaseException) -> None:
    """A kfnb handler at ``kfnb/api/test-failing`` whose GET raises ``error``."""

    class Failing(KfnbHandler):
        @tornado.web.authenticated
        @authorized
        def get(self) -> None:
            raise error

    route = url_path_join(jp_base_url, "kfnb", "api", "test-failing")
    jp_serverapp.web_app.add_handlers(".*$", [(route, Failing)])


async def error_of(jp_fetch: Fetch) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("kfnb", "api", "test-failing")
    response = caught.value.response
    assert response is not None
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = json.loads(response.body)
    validate(CONTRACT, body, component(CONTRACT, "Error"))
    return caught.value.code, body


@pytest.mark.parametrize(("error", "status", "message"), CASES)
async def test_errors_map_to_json_bodies(
    jp_fetch: Fetch,
    jp_serverapp: Any,
    jp_base_url: str,
    error: BaseException,
    status: int,
    message: str,
) -> None:
    failing_route(jp_serverapp, jp_base_url, error)
    code, body = await error_of(jp_fetch)
    assert code == status
    assert body["code"] == status
    assert body["message"].startswith(message)
    assert "secret internals" not in body["message"]
    assert "Fix:" not in body["message"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            NotebookError(
                "step 'b' reads 'y', which no step defines",
                cell_index=4,
                cell_line="z = y + 1",
                fix="define y in an earlier step",
                path="pipe.ipynb",
            ),
            {
                "code": 400,
                "message": "step 'b' reads 'y', which no step defines",
                "fix": "define y in an earlier step",
                "where": "pipe.ipynb, cell 4 ('z = y + 1')",
                "cell_index": 4,
                "cell_line": "z = y + 1",
            },
            id="notebook-cell",
        ),
        pytest.param(
            BackendError("backend 'local' has no option 'max_paralel'", fix="did you mean x?"),
            {
                "code": 400,
                "message": "backend 'local' has no option 'max_paralel'",
                "fix": "did you mean x?",
                "where": None,
            },
            id="fix",
        ),
        pytest.param(
            KfnbError("the store is locked", where="/data/kfnb/runs.db", fix="wait"),
            {
                "code": 500,
                "message": "the store is locked",
                "fix": "wait",
                "where": "/data/kfnb/runs.db",
            },
            id="where",
        ),
        pytest.param(
            RuntimeError("secret internals. Fix: nothing"),
            {
                "code": 500,
                "message": "Internal server error; the Jupyter server log has the details.",
                "fix": None,
                "where": None,
            },
            id="internal",
        ),
    ],
)
async def test_error_bodies_carry_the_errors_attributes(
    jp_fetch: Fetch,
    jp_serverapp: Any,
    jp_base_url: str,
    error: BaseException,
    expected: dict[str, Any],
) -> None:
    """``fix``, ``where`` and the cell come from the error's attributes, not from its text."""
    failing_route(jp_serverapp, jp_base_url, error)
    code, body = await error_of(jp_fetch)
    assert code == expected["code"]
    assert body == expected
