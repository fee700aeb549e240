"""Kernels started ahead of time: a pool of fresh kernels, forked from a pre-imported server.

``shared_pool(config)`` is the process-wide pool of a kernelspec, which the local backend takes
its kernels from; ``warm()`` starts it early in a long-lived process (a notebook, a Jupyter
server) so that the next run starts at once.
"""

from __future__ import annotations

import threading

from .forked import ForkServer, ForkServerError
from .kernel import WarmKernel
from .pool import KernelPool, PoolConfig

__all__ = [
    "ForkServer",
    "ForkServerError",
    "KernelPool",
    "PoolConfig",
    "WarmKernel",
    "shared_pool",
    "shared_pool_stats",
    "shutdown_shared_pools",
    "warm",
]

_pools: dict[str, KernelPool] = {}
_lock = threading.Lock()


def shared_pool(config: PoolConfig | None = None) -> KernelPool:
    """This process's pool for ``config.kernel_name``, created (or re-created, if its settings
    changed) on first use. Its ``size`` only grows: the largest size asked for is kept."""
    config = config or PoolConfig()
    with _lock:
        pool = _pools.get(config.kernel_name)
        if pool is not None and not pool.closed:
            same = (
                pool.config.preload == config.preload
                and pool.config.fork_server == config.fork_server
            )
            if same:
                pool.config.size = max(pool.config.size, config.size)
                return pool.start()
            pool.shutdown()
        pool = KernelPool(config)
        _pools[config.kernel_name] = pool
        return pool.start()


def warm(
    size: int = 2, *, kernel_name: str = "python3", preload: tuple[str, ...] = ()
) -> KernelPool:
    """Keep ``size`` fresh kernels ready in this process, for runs started from it."""
    return shared_pool(PoolConfig(size=size, kernel_name=kernel_name, preload=tuple(preload)))


def shared_pool_stats() -> list[dict[str, object]]:
    """What each of this process's pools holds now (see ``KernelPool.stats``)."""
    with _lock:
        pools = [p for p in _pools.values() if not p.closed]
    return [p.stats() for p in pools]


def shutdown_shared_pools() -> None:
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown()
