"""Kernels started ahead of time: a pool of fresh kernels, forked from a pre-imported server.

``shared_pool(config)`` is a process-wide pool that the local backend takes its kernels from;
``kfnb.warm()`` (the local backend's ``warm``) starts one early in a long-lived process (a
notebook, a Jupyter server) so that the next run starts at once.

Shared pools are keyed by what makes their kernels differ: the kernelspec, the preloaded
modules, the fork server choice and the ZeroMQ transport. Runs asking for different keys get
different pools, side by side, so a run never loses its kernels to another run's settings. The
same key always gives the same pool; its ``size`` (kernels kept ready while idle) only grows, in
place: the largest size asked for is kept, and nothing is restarted. Other settings of a
``PoolConfig`` (``max_starting``, ``max_ready``, ``start_timeout``) are the first asker's.

At most ``MAX_SHARED_POOLS`` pools are kept. Asking for one more replaces the least recently
asked-for pool, which is *drained*, not shut down: its kernels already handed out finish their
steps, runs that hold it still get the kernels they said they need, its idle kernels are shut
down, and it shuts itself down when its last kernel is discarded. ``shutdown_shared_pools()``
(a server stopping, the end of a process) kills every pool at once, drained ones included.
"""

from __future__ import annotations

import threading

from .forked import ForkServer, ForkServerError
from .kernel import WarmKernel
from .pool import KernelPool, PoolConfig

__all__ = [
    "MAX_SHARED_POOLS",
    "ForkServer",
    "ForkServerError",
    "KernelPool",
    "PoolConfig",
    "PoolKey",
    "WarmKernel",
    "pool_key",
    "shared_pool",
    "shared_pool_stats",
    "shutdown_shared_pools",
]

MAX_SHARED_POOLS = 4

PoolKey = tuple[str, tuple[str, ...], bool | None, str]

_pools: dict[PoolKey, KernelPool] = {}  # least recently asked for first
_drained: list[KernelPool] = []  # replaced, still serving the steps that use them
_lock = threading.Lock()


def pool_key(config: PoolConfig) -> PoolKey:
    """What makes two pools' kernels differ: kernelspec, preloads, fork server, transport."""
    return (config.kernel_name, tuple(config.preload), config.fork_server, config.transport)


def shared_pool(config: PoolConfig | None = None) -> KernelPool:
    """This process's pool for ``config``'s key, created on first use (see the module's doc)."""
    config = config or PoolConfig()
    key = pool_key(config)
    with _lock:
        pool = _pools.pop(key, None)
        if pool is not None and not pool.closed and not pool.draining:
            _pools[key] = pool  # now the most recently asked for
            if config.size > pool.config.size:
                pool.resize(config.size)
            return pool.start()
        pool = KernelPool(config)
        _pools[key] = pool
        replaced = []
        while len(_pools) > MAX_SHARED_POOLS:
            replaced.append(_pools.pop(next(iter(_pools))))
        _drained[:] = [p for p in _drained if not p.closed] + replaced
        pool.start()
    for old in replaced:
        old.drain()
    return pool


def shared_pool_stats() -> list[dict[str, object]]:
    """What each of this process's shared pools holds now (see ``KernelPool.stats``); pools
    being drained are not listed."""
    with _lock:
        pools = [p for p in _pools.values() if not p.closed]
    return [p.stats() for p in pools]


def shutdown_shared_pools() -> None:
    """Kill every shared pool's kernels now, drained pools included."""
    with _lock:
        pools = [*_pools.values(), *_drained]
        _pools.clear()
        _drained.clear()
    for pool in pools:
        pool.shutdown()
