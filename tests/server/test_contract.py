"""The live server keeps to the written REST contract, server_ext/openapi.yaml."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

import jsonschema
import pytest
import yaml
from tornado.httpclient import HTTPClientError, HTTPResponse

Fetch = Callable[..., Awaitable[HTTPResponse]]


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    text = files("kfnb.server_ext").joinpath("openapi.yaml").read_text()
    spec: dict[str, Any] = yaml.safe_load(text)
    return spec


def schema(contract: dict[str, Any], name: str) -> dict[str, Any]:
    return {**contract["components"]["schemas"][name], "components": contract["components"]}


async def test_version_response_matches_contract(jp_fetch: Fetch,
                                                 contract: dict[str, Any]) -> None:
    response = await jp_fetch("kfnb", "api", "version")
    jsonschema.validate(json.loads(response.body), schema(contract, "Version"))


async def test_error_response_matches_contract(jp_fetch: Fetch, contract: dict[str, Any]) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("kfnb", "api", "version", headers={"Authorization": "token wrong"})
    assert caught.value.response is not None
    body = json.loads(caught.value.response.body)
    jsonschema.validate(body, schema(contract, "Error"))


def kfnb_routes(router: Any) -> set[str]:
    """URL patterns under /kfnb/api/ in a tornado router, walking nested routers."""
    found: set[str] = set()
    for rule in getattr(router, "rules", []):
        regex = getattr(rule.matcher, "regex", None)
        if regex is not None and "/kfnb/api/" in regex.pattern:
            found.add(regex.pattern.rstrip("$"))
        found |= kfnb_routes(rule.target)
    return found


def test_every_route_is_in_the_contract(jp_serverapp: Any, contract: dict[str, Any]) -> None:
    app = jp_serverapp.web_app
    routes = kfnb_routes(app.default_router) | kfnb_routes(app.wildcard_router)
    assert routes, "no kfnb routes found on the server"
    base = app.settings["base_url"].rstrip("/")
    documented = {base + path for path in contract["paths"]}
    assert routes <= documented, f"undocumented routes: {sorted(routes - documented)}"
