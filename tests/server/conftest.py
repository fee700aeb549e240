"""Fixtures for the server-extension tests: pytest-jupyter's in-process Jupyter server.

pytest 9 refuses ``pytest_plugins`` in a conftest below the root, and loading the plugin for the
whole run (``-p`` or a root conftest) would put its autouse event-loop fixtures under every
test, the Playwright ones in ``tests/ui`` included. Importing the plugin's fixtures and hooks
here scopes them to this folder: pytest collects fixtures and ``pytest_*`` hooks from a
conftest's namespace, and calls conftest hooks only for the tests below it.

``api`` is the REST client of these tests (``api_client.Api``): every response it gets is
validated against ``server_ext/openapi.yaml`` (the operation must document the status, and the
body must match the schema), so every test that talks to the server checks the contract as it
goes. Every server gets a run store of its own; no test leaves kernels behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from api_client import Api, Write, load_contract, notebook_node
from pytest_jupyter.jupyter_server import *  # noqa: F403
from tornado.httpclient import AsyncHTTPClient

from kfnb.kernels import shutdown_shared_pools


@pytest.fixture  # type: ignore[no-redef]  # overrides the plugin's fixture of that name
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    """A server that loads kfnb and nothing else, refuses unauthenticated requests, and keeps
    its runs in a store of its own (outside the server root)."""
    return {
        "ServerApp": {
            # pytest-jupyter adds jupyter_server_terminals unless told otherwise.
            "jpserver_extensions": {"kfnb": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        },
        "KfnbServerSettings": {
            "pool_size": 0,  # tests/server/test_pool.py turns it on; runs start kernels anyway
            "home": str(tmp_path / "kfnb-home"),
            "refresh_interval": 0,  # tests/server/test_remote.py turns it on
        },
    }


@pytest.fixture(autouse=True)
def isolated_kfnb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads the user's ~/.kfnb, config file or cluster settings, and no test leaves
    kernels behind."""
    monkeypatch.setenv("KFNB_HOME", str(tmp_path / "kfnb-home"))
    monkeypatch.setenv("KFNB_CONFIG", str(tmp_path / "kfnb-config.yaml"))
    for name in (
        "KFNB_KFP_HOST",
        "KF_PIPELINES_ENDPOINT",
        "KFNB_KFP_NAMESPACE",
        "KFNB_KFP_TOKEN",
        "KFNB_KFP_COOKIES",
        "KUBERNETES_SERVICE_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
    shutdown_shared_pools()


@pytest.fixture(scope="session")
def contract() -> dict[str, Any]:
    return load_contract()


@pytest.fixture
def api(
    http_server_client: AsyncHTTPClient,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    contract: dict[str, Any],
) -> Api:
    return Api(http_server_client, jp_base_url, jp_auth_header, contract)


# -- notebooks ---
@pytest.fixture
def write_notebook(jp_root_dir: Path) -> Write:
    """``write_notebook("sub/name.ipynb", cells...)`` -> its contents path."""

    def write(path: str, *cells: Any) -> str:
        target = jp_root_dir.joinpath(*path.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook_node(*cells), target)
        return path

    return write
