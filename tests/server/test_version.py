"""``GET /kfnb/api/version`` answers the installed kfnb version, and only to known users."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPResponse

import kfnb
from kfnb.server_ext.base import API_VERSION

Fetch = Callable[..., Awaitable[HTTPResponse]]


async def test_version_reports_installed_package(jp_fetch: Fetch) -> None:
    response = await jp_fetch("kfnb", "api", "version")

    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body) == {"version": kfnb.__version__, "api": API_VERSION}


async def test_version_matches_distribution_metadata(jp_fetch: Fetch) -> None:
    from importlib.metadata import version

    response = await jp_fetch("kfnb", "api", "version")

    assert json.loads(response.body)["version"] == version("kfnb")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Authorization": ""}, id="no-token"),
        pytest.param({"Authorization": "token not-the-token"}, id="wrong-token"),
    ],
)
async def test_version_rejects_unauthenticated(jp_fetch: Fetch, headers: dict[str, Any]) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("kfnb", "api", "version", headers=headers)

    assert caught.value.code in (401, 403)


async def test_extension_loads_and_registers_settings(jp_serverapp: Any) -> None:
    from kfnb.server_ext import KfnbServerSettings

    settings = jp_serverapp.web_app.settings
    assert "kfnb" in settings, "the kfnb server extension did not load; see the captured log"
    assert isinstance(settings["kfnb"], KfnbServerSettings)
