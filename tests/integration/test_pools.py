"""Shared kernel pools: one per (kernelspec, preloads, fork server, transport), side by side;
a replaced pool drains (its kernels in use finish their steps) instead of killing them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from procs import alive, wait_for

import kfnb
import kfnb.kernels as kernels
from kfnb.kernels import PoolConfig, shared_pool, shared_pool_stats, shutdown_shared_pools
from kfnb.tracking import Store

Write = Callable[..., Path]


@pytest.fixture(autouse=True)
def own_pools() -> Iterator[None]:
    """Each test starts and ends with no shared pool in this process."""
    shutdown_shared_pools()
    yield
    shutdown_shared_pools()


def test_concurrent_runs_with_other_preloads_both_succeed(
    write_notebook: Write, store: Store, tmp_path: Path
) -> None:
    started, barrier = tmp_path / "started", tmp_path / "barrier"
    first_nb = write_notebook(
        "first",
        (
            "step:a",
            f"import json, os, time\nopen({str(started)!r}, 'w').close()\n"
            f"while not os.path.exists({str(barrier)!r}):\n    time.sleep(0.02)\n"
            "x = json.dumps([1])",
        ),
    )
    second_nb = write_notebook("second", ("step:b", "import csv\ny = csv.QUOTE_ALL"))
    first = kfnb.run(first_nb, preload=("json",), pool_size=0, wait=False, store=store)
    wait_for(started.exists, "the first run's step to start")
    second = kfnb.run(second_nb, preload=("csv",), pool_size=0, wait=False, store=store)
    assert second.wait(timeout=120).status == "SUCCEEDED", second.record.to_dict()
    barrier.touch()  # the first run's kernel lived through the second run's pool
    assert first.wait(timeout=120).status == "SUCCEEDED", first.record.to_dict()
    preloads = sorted(str(p["preload"]) for p in shared_pool_stats())
    assert preloads == ["['csv']", "['json']"]  # both pools, side by side


def test_pools_are_keyed_and_the_same_key_grows_in_place() -> None:
    json_pool = shared_pool(PoolConfig(size=0, preload=("json",)))
    csv_pool = shared_pool(PoolConfig(size=0, preload=("csv",)))
    spawned = shared_pool(PoolConfig(size=0, preload=("json",), fork_server=False))
    assert len({id(json_pool), id(csv_pool), id(spawned)}) == 3
    stats = shared_pool_stats()
    assert sorted((tuple(s["preload"]), s["fork_server"]) for s in stats) == [  # type: ignore[arg-type]
        (("csv",), True),
        (("json",), False),
        (("json",), True),
    ]
    again = shared_pool(PoolConfig(size=1, preload=("json",)))
    assert again is json_pool and json_pool.config.size == 1  # resized, not replaced
    assert shared_pool(PoolConfig(size=0, preload=("json",))).config.size == 1  # only grows
    assert not json_pool.closed and not csv_pool.closed


def test_a_replaced_pool_drains_its_kernels_in_use_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from test_kernels import ask

    monkeypatch.setattr(kernels, "MAX_SHARED_POOLS", 1)
    old = shared_pool(PoolConfig(size=1, preload=("json",)))
    in_use = old.acquire(timeout=120)
    wait_for(lambda: old.stats()["ready"] == 1, "a spare kernel in the old pool")
    server = old._server.proc.pid if old._server and old._server.proc else None
    spare = [p for p in old.pids() if p not in (in_use.pid, server)]
    assert len(spare) == 1
    new = shared_pool(PoolConfig(size=0, preload=("csv",)))  # one pool at most: replaces old
    assert new is not old and old.draining
    assert [tuple(s["preload"]) for s in shared_pool_stats()] == [("csv",)]  # type: ignore[arg-type]
    wait_for(lambda: not any(alive(p) for p in spare), "the idle kernel to be shut down")
    assert ask(in_use, "21 * 2") == 42  # the kernel a step holds still works
    assert not old.closed
    old.discard(in_use)
    wait_for(lambda: old.closed, "the drained pool to close with its last kernel")
    assert not in_use.alive() and not new.closed
    assert os.getpid() not in old.pids()
