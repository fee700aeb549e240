"""A pool of fresh kernels started ahead of time, so that a step never waits for a kernel to boot.

A kernel from the pool is *fresh*: it has run no code but kfnb's own silent set-up, and it is
handed to exactly one step, then shut down; it is never reused. What the pool saves is the
start-up time, not isolation.

The pool keeps ``size`` kernels ready while nothing asks for more (the warm pool of a long-lived
process: a Jupyter server, a notebook kernel that ran ``kfnb.warm()``), and starts more ahead of
demand: a run says how many kernels it will need (``want``), and the pool starts them, at most
``max_starting`` at once (more for forked kernels than for spawned ones), while the first steps
run (pipelining). Kernels come from a fork server
(``forkserver.py``) when the kernelspec is this interpreter's ipykernel, else from jupyter_client's
usual launcher. The pool's thread sleeps in its event loop when there is nothing to do: an idle
pool costs memory (one fork server and ``size`` kernels), not CPU.

No kernel outlives the pool's owner: ``shutdown()`` kills them all (and runs at exit), kernels of
the fork server die with it when the owner's pipe to it closes, and ipykernel's parent poller
ends a spawned kernel whose owner was killed.

A pool that is no longer wanted while steps may still use its kernels is *drained* instead
(``drain()``): it keeps no spare kernels, shuts down its idle ones, still serves the runs that
hold it (a kernel handed out finishes its step; a kernel a run said it will need is still
started), and shuts itself down once no kernel is out and nothing is wanted.

The pool reads no settings: whether to fork (``fork_server``) and the ZeroMQ transport come in
its ``PoolConfig``, from the local backend's options (``KFNB_FORK_SERVER``,
``KFNB_KERNEL_TRANSPORT``), read at the entry point.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from .forked import ForkProvisioner, ForkServer, forkable
from .forked import take as take_fork_server
from .kernel import WarmKernel, handshake, open_client

log = logging.getLogger("kfnb.kernels")

HISTORY_IN_MEMORY = "--HistoryManager.hist_file=:memory:"  # as nbclient does: no sqlite file


@dataclass
class PoolConfig:
    """How a kernel pool behaves. ``fork_server=None`` means "when the kernelspec allows it"."""

    size: int = 2
    kernel_name: str = "python3"
    preload: tuple[str, ...] = ()
    fork_server: bool | None = None
    max_starting: int | None = None  # None: as many as suits how kernels start (``starts``)
    max_ready: int = 16
    start_timeout: float = 60.0
    transport: str = "ipc"


class KernelPool:
    """Fresh kernels of one kernelspec, started ahead. Thread-safe."""

    def __init__(self, config: PoolConfig | None = None) -> None:
        self.config = dataclasses.replace(config or PoolConfig())  # its own: size changes
        self.started = 0  # kernels started over the pool's life
        self._ready: collections.deque[WarmKernel] = collections.deque()
        self._starting = 0
        self._demand = 0
        self._waiting = 0
        self._errors: list[BaseException] = []
        self._said: set[str] = set()  # start failures already logged
        self._live: dict[int, WarmKernel] = {}  # every kernel not yet known dead, by pid
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: ForkServer | None = None
        self._closed = False
        self._draining = False
        self._socket_root = tempfile.mkdtemp(prefix="kfnb-kernels-")

    # -- life -----------------------------------------------------------------------------------
    def start(self) -> KernelPool:
        """Start the pool's thread (and fork server) and begin filling it; returns at once."""
        with self._cond:
            if self._closed:
                raise RuntimeError("this kernel pool was shut down")
            if self._thread is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="kfnb-kernel-pool", daemon=True
                )
                self._thread.start()
                if self._use_fork_server():
                    self._server = take_fork_server(self.config.preload)
                atexit.register(self.shutdown)
        self._top_up()
        return self

    def shutdown(self) -> None:
        """Kill every kernel of the pool (ready, in use or starting) and stop its processes."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._ready.clear()
            self._cond.notify_all()
            end = time.monotonic() + 5.0  # let starts in flight finish (~0.2 s), then kill them
            while self._starting and time.monotonic() < end:
                self._cond.wait(0.05)
            kernels = list(self._live.values())
        for kernel in kernels:
            kernel.kill()
        if self._server is not None:
            self._server.stop()
        if self._loop is not None:
            with contextlib.suppress(Exception):  # end pending starts and shutdowns cleanly
                asyncio.run_coroutine_threadsafe(_cancel_tasks(), self._loop).result(timeout=5)
            with contextlib.suppress(Exception):  # sockets, zmq contexts, connection files
                asyncio.run_coroutine_threadsafe(_release(kernels), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=5)
                if not self._thread.is_alive():
                    self._loop.close()
        for kernel in kernels:
            kernel.cleanup_files()
        shutil.rmtree(self._socket_root, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.shutdown)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def draining(self) -> bool:
        return self._draining

    def resize(self, size: int) -> None:
        """Keep ``size`` kernels ready while idle (more are started at once, fewer are left to
        be used up)."""
        with self._cond:
            self.config.size = max(0, size)
        self._top_up()

    def drain(self) -> None:
        """Wind the pool down without hurting the steps that use it: no spare kernels, the idle
        ones shut down now, and ``shutdown()`` once every kernel handed out has been discarded
        and no run still wants one (runs holding the pool can still ``acquire``)."""
        with self._cond:
            if self._closed:
                return
            self._draining = True
            self.config.size = 0
            spare = len(self._ready) - max(self._demand, self._waiting)
            idle = [self._ready.pop() for _ in range(max(0, spare))]
        for kernel in idle:
            self.discard(kernel, now=True)
        self._close_if_drained()

    def _close_if_drained(self) -> None:
        with self._cond:
            done = (
                self._draining
                and not self._closed
                and self._demand == 0
                and self._waiting == 0
                and self._starting == 0
                and len(self._live) == len(self._ready)  # no kernel out, none stopping
            )
        if done:  # not on the pool's own loop thread, which shutdown() waits on
            threading.Thread(target=self.shutdown, name="kfnb-pool-drained", daemon=True).start()

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {
                "ready": len(self._ready),
                "starting": self._starting,
                "demand": self._demand,
                "live": len(self._live),
                "started": self.started,
                "size": self.config.size,
                "fork_server": self._server is not None,
                "kernel_name": self.config.kernel_name,
                "preload": list(self.config.preload),
            }

    def pids(self) -> list[int]:
        """Process ids of the kernels alive now (and of the fork server)."""
        with self._cond:
            pids = list(self._live)
        if self._server is not None and self._server.proc is not None:
            pids.append(self._server.proc.pid)
        return pids

    # -- demand ---------------------------------------------------------------------------------
    def want(self, n: int) -> None:
        """Say that ``n`` more kernels will be acquired soon (negative: fewer than said)."""
        with self._cond:
            self._demand = max(0, self._demand + n)
        self._top_up()
        if n < 0:
            self._close_if_drained()

    def acquire(self, timeout: float | None = None) -> WarmKernel:
        """A fresh kernel of one's own: taken from the ready ones, or the next one to start."""
        self.start()
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
        try:
            self._top_up()
            with self._cond:
                while not self._ready:
                    if self._closed:
                        raise RuntimeError("the kernel pool was shut down")
                    if self._errors and not self._starting:
                        raise self._errors.pop(0)
                    left = None if end is None else end - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError("no kernel became ready in time")
                    self._cond.wait(left)
                kernel = self._ready.popleft()
                self._demand = max(0, self._demand - 1)
        finally:
            with self._cond:
                self._waiting -= 1
            self._close_if_drained()  # an acquire that gave up may have been the last want
        self._top_up()
        return kernel

    def discard(self, kernel: WarmKernel, *, now: bool = False) -> None:
        """Shut down a kernel a step has used (gracefully, in the background; never reused)."""
        if self._loop is None or self._closed:
            kernel.kill()
            self._forget(kernel)
            return
        self._submit(self._shutdown(kernel, now=now))

    def kill(self, kernel: WarmKernel) -> None:
        """Kill a kernel and its process tree at once (cancel, timeout)."""
        kernel.kill()
        if self._loop is not None and not self._closed:
            self._submit(self._shutdown(kernel, now=True))

    # -- filling --------------------------------------------------------------------------------
    def _use_fork_server(self) -> bool:
        if self.config.fork_server is False:
            return False
        from jupyter_client.kernelspec import KernelSpecManager

        try:
            argv = KernelSpecManager().get_kernel_spec(self.config.kernel_name).argv
        except Exception:
            return False
        return forkable(argv)

    def _max_starting(self) -> int:
        """Kernels started at once: a spawned kernel is ~0.5 CPU-s of imports, so about one a
        core; a forked one is ~0.1 CPU-s and mostly waits (sockets, handshake), so more at once
        start sooner (8 kernels on 2 cores: 0.75 s with 8 at once, 1.25 s with 2)."""
        if self.config.max_starting is not None:
            return max(1, self.config.max_starting)
        cpus = os.cpu_count() or 2
        return max(8, 2 * cpus) if self._server is not None else max(2, cpus)

    def _top_up(self) -> None:
        if self._loop is None:
            return
        with self._cond:
            if self._closed:
                return
            target = min(self.config.max_ready, max(self.config.size, self._demand, self._waiting))
            n = min(
                target - len(self._ready) - self._starting,
                self._max_starting() - self._starting,
            )
            n = max(0, n)
            self._starting += n
        for _ in range(n):
            self._submit(self._start_one())

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        assert self._loop is not None
        try:
            asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop is closed: the pool is shutting down
            coro.close()

    async def _start_one(self) -> None:
        kernel: WarmKernel | None = None
        try:
            kernel = await self._launch()
        except BaseException as err:
            text = str(err)
            with self._cond:
                said = text in self._said
                self._said.add(text)
            if not said:  # a cause that stops every start is said once, not once a kernel
                log.warning("a kernel did not start: %s", text)
            with self._cond:
                self._starting -= 1
                self._errors.append(err)
                self._cond.notify_all()
            self._close_if_drained()
            return
        with self._cond:
            self._starting -= 1
            if self._closed:
                kernel.kill()
                return
            self._ready.append(kernel)
            self._cond.notify_all()
        self._top_up()
        self._close_if_drained()

    async def _launch(self) -> WarmKernel:
        from jupyter_client.manager import AsyncKernelManager

        t0 = time.monotonic()
        km = AsyncKernelManager(kernel_name=self.config.kernel_name)
        km.transport = self.config.transport
        if km.transport == "ipc":  # sockets in a folder of the pool's: no TCP port to race for
            km.ip = os.path.join(tempfile.mkdtemp(dir=self._socket_root), "k")
        if self._server is not None:
            provisioner = ForkProvisioner(kernel_id=None, kernel_spec=km.kernel_spec, parent=km)
            provisioner.fork_server = self._server
            km.provisioner = provisioner
        try:
            await km.start_kernel(extra_arguments=[HISTORY_IN_MEMORY])
        except BaseException:  # failed or cancelled (shutdown) half-way: leave nothing behind
            with contextlib.suppress(BaseException):
                await km.shutdown_kernel(now=True)
            with contextlib.suppress(BaseException):
                await km.cleanup_resources()
            raise
        kernel = WarmKernel(km=km, pid=km.provisioner.pid, started_at=t0)  # type: ignore[union-attr]
        with self._cond:
            self._live[kernel.pid] = kernel
            self.started += 1
        try:
            kc = open_client(km)
            try:
                await handshake(kc, self.config.start_timeout, alive=km.is_alive)
                if self._server is None and self.config.preload:
                    code = "\n".join(f"import {m}" for m in self.config.preload)
                    await kc.execute_interactive(
                        f"exec({code!r}, {{}})",
                        silent=True,
                        store_history=False,
                        timeout=self.config.start_timeout,
                    )
            finally:
                kc.stop_channels()
        except BaseException:
            kernel.kill()
            self._forget(kernel)
            raise
        kernel.ready_at = time.monotonic()
        return kernel

    async def _shutdown(self, kernel: WarmKernel, *, now: bool) -> None:
        """Shut a kernel's manager down, once: a killed kernel (cancel, timeout) is discarded
        again by its step's thread, and a second shutdown of a manager whose sockets and zmq
        context are gone fails in jupyter_client, which logs it as a ``ZMQError`` traceback
        ("Operation not supported", "Socket operation on non-socket"). A kernel that is
        already dead is not asked to shut down either: nothing would answer."""
        if kernel.closing:
            return
        kernel.closing = True  # on the pool's loop: no other shutdown runs between test and set
        graceful = False
        try:
            if not now and kernel.alive():
                await asyncio.wait_for(kernel.km.shutdown_kernel(now=False), timeout=10)
                graceful = True
        except Exception as err:
            log.debug("kernel %s did not shut down cleanly: %s", kernel.pid, err)
        finally:
            kernel.kill()
            if not graceful:
                with contextlib.suppress(Exception):
                    await kernel.km.shutdown_kernel(now=True)
            kernel.cleanup_files()
            self._forget(kernel)

    def _forget(self, kernel: WarmKernel) -> None:
        with self._cond:
            self._live.pop(kernel.pid, None)
            self._cond.notify_all()
        self._close_if_drained()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every kernel handed out has been shut down (for tests and clean exits)."""
        end = time.monotonic() + timeout
        with self._cond:
            while any(k not in self._ready for k in self._live.values()):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


async def _cancel_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _release(kernels: list[WarmKernel]) -> None:
    for kernel in kernels:
        with contextlib.suppress(Exception):
            await kernel.km.cleanup_resources()
