"""Fixtures for the server-extension tests: pytest-jupyter's in-process Jupyter server.

pytest 9 refuses ``pytest_plugins`` in a conftest below the root, and loading the plugin for the
whole run (``-p`` or a root conftest) would put its autouse event-loop fixtures under every
test, the Playwright ones in ``tests/ui`` included. Importing the plugin's fixtures and hooks
here scopes them to this folder: pytest collects fixtures and ``pytest_*`` hooks from a
conftest's namespace, and calls conftest hooks only for the tests below it.
"""

from __future__ import annotations

from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403


@pytest.fixture  # type: ignore[no-redef]  # overrides the plugin's fixture of that name
def jp_server_config() -> dict[str, Any]:
    """A server that loads kfnb and nothing else, and refuses unauthenticated requests."""
    return {
        "ServerApp": {
            # pytest-jupyter adds jupyter_server_terminals unless told otherwise.
            "jpserver_extensions": {"kfnb": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        },
        "KfnbServerSettings": {"pool_size": 0},  # tests/server/test_pool.py turns it on
    }
