"""The server keeps fresh kernels ready for runs started from JupyterLab: GET /kfnb/api/pool."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kfnb.kernels import shared_pool_stats, shutdown_shared_pools

Fetch = Callable[..., Awaitable[Any]]
CONTRACT = Path(__file__).resolve().parents[2] / "server_ext" / "openapi.yaml"


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"kfnb": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        },
        "KfnbServerSettings": {"pool_size": 1},
    }


@pytest.fixture(autouse=True)
def no_pools_left() -> Any:
    shutdown_shared_pools()
    yield
    shutdown_shared_pools()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def test_the_server_keeps_a_kernel_ready(jp_fetch: Fetch) -> None:
    contract = yaml.safe_load(CONTRACT.read_text())
    pool_schema = {
        **contract["components"]["schemas"]["Pool"],
        "components": contract["components"],
    }
    body: list[dict[str, Any]] = []
    for _ in range(600):  # the pool fills in the background; the server answered at once
        response = await jp_fetch("kfnb", "api", "pool")
        body = json.loads(response.body)
        if body and body[0]["ready"] >= 1:
            break
        await asyncio.sleep(0.1)
    assert len(body) == 1
    for entry in body:
        jsonschema.validate(entry, pool_schema)
    pool = body[0]
    assert (pool["kernel_name"], pool["size"], pool["ready"]) == ("python3", 1, 1)
    from kfnb.kernels import PoolConfig, shared_pool

    pids = shared_pool(PoolConfig(size=1)).pids()  # the same pool: same kernelspec and settings
    assert pids and all(alive(p) for p in pids)
    shutdown_shared_pools()  # what the server does when it stops (_unload_jupyter_server_extension)
    assert not any(alive(p) for p in pids)
    assert shared_pool_stats() == []
    assert os.getpid() not in pids
