"""A started kernel waiting for its step, and the quick handshake that connects a client to it.

kfnb's clients (``open_client``) run without jupyter_client's heartbeat channel: kfnb watches
its kernels' processes (the manager's ``is_alive``, which is also what a client made by its
manager asks), and the heartbeat thread stopped just after it started busy-loops in
jupyter_client (8.x: ``HBChannel._async_run`` sets ``_running`` again after ``stop()`` cleared it,
then, its exit event already set, recreates its socket without pause until the zmq context's
1023 sockets are used up, ``stop_channels`` waiting on it: up to 23 s seen). That context is the
kernel manager's, which the step's own client shares: under load its channels then failed with
"Too many open files" and failed the step, and the pool's loop, stopping its handshake client,
held every other start meanwhile.

jupyter_client's ``wait_for_ready`` spends 0.2-0.5 s per client making sure IOPub is subscribed
(it waits out a 0.2 s timeout, then drains IOPub for another 0.2 s). On a kernel known to be up,
``handshake`` does the same check in a few milliseconds: it sends ``kernel_info`` and waits for
the reply on shell and for the matching status message on IOPub, retrying only if IOPub missed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from queue import Empty
from typing import Any

from .forked import ForkedProcess
from .processes import descendants, running


def open_client(km: Any) -> Any:
    """A client of ``km``'s kernel with its channels started, all but the heartbeat."""
    kc = km.client()
    kc.start_channels(hb=False)
    return kc


async def handshake(
    kc: Any, timeout: float, alive: Callable[[], Awaitable[bool]] | None = None
) -> None:
    """Wait until the kernel answers on shell and its IOPub reaches ``kc``."""
    end = time.monotonic() + timeout
    while True:
        msg_id = kc.kernel_info()
        got_reply = got_iopub = False
        while not (got_reply and got_iopub):
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the kernel did not answer within {timeout:g} s")
            if not got_reply:
                try:
                    reply = await kc.get_shell_msg(timeout=min(left, 1.0))
                except Empty:
                    if alive is not None and not await alive():
                        raise RuntimeError("the kernel died while starting") from None
                    continue
                got_reply = reply.get("parent_header", {}).get("msg_id") == msg_id
                continue
            try:
                msg = await kc.get_iopub_msg(timeout=min(left, 0.05))
            except Empty:
                break  # IOPub was not subscribed yet when the kernel answered: ask again
            got_iopub = msg.get("parent_header", {}).get("msg_id") == msg_id
        if got_reply and got_iopub:
            return


@dataclass(eq=False)
class WarmKernel:
    """A fresh kernel from a ``KernelPool``: one step's, then shut down."""

    km: Any  # jupyter_client.AsyncKernelManager
    pid: int
    started_at: float
    ready_at: float | None = None
    closing: bool = False  # its manager is being (or was) shut down: once per kernel

    def connect(self, *, cwd: str, env: Mapping[str, str], timeout: float = 30.0) -> Any:
        """A client of this kernel for the calling thread, the kernel moved to ``cwd`` with
        ``env`` set (in a throwaway namespace: the user's namespace stays empty)."""
        from jupyter_core.utils import run_sync

        kc = open_client(self.km)
        try:
            run_sync(self._setup)(kc, cwd, dict(env), timeout)
        except BaseException:
            kc.stop_channels()
            raise
        kc.allow_stdin = False
        return kc

    async def _setup(self, kc: Any, cwd: str, env: dict[str, str], timeout: float) -> None:
        await handshake(kc, timeout, alive=self.km.is_alive)
        setup = asyncio.ensure_future(self._run_setup(kc, cwd, env, timeout))
        watch = asyncio.ensure_future(self._until_dead())
        try:
            # a kernel killed meanwhile (a cancel, a timeout) never answers: do not wait it out
            await asyncio.wait({setup, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (setup, watch):
                task.cancel()
            await asyncio.gather(setup, watch, return_exceptions=True)
        if not setup.cancelled():
            setup.result()  # its own error, if it failed
            return
        raise RuntimeError(f"{self.death()} while it was being set up")

    async def _until_dead(self) -> None:
        while await self.km.is_alive():
            await asyncio.sleep(0.1)

    async def _run_setup(self, kc: Any, cwd: str, env: dict[str, str], timeout: float) -> None:
        code = (
            "import os, sys\n"
            f"os.chdir({cwd!r})\n"
            f"os.environ.update(__import__('json').loads({json.dumps(env)!r}))\n"
            f"sys.path.insert(0, {cwd!r}) if {cwd!r} not in sys.path else None\n"
        )
        reply = await kc.execute_interactive(
            f"exec({code!r}, {{}})",
            silent=True,
            store_history=False,
            timeout=timeout,
            output_hook=lambda msg: None,
        )
        if reply["content"].get("status") != "ok":
            content = reply["content"]
            raise RuntimeError(
                f"kernel set-up failed: {content.get('ename')}: {content.get('evalue')}"
            )

    def alive(self) -> bool:
        return running(self.pid)

    def exit_status(self) -> int | None:
        """How the kernel ended, as ``Popen.returncode`` reads (``-9``: killed by SIGKILL), or
        None while it runs or where nobody knows. A forked kernel's status belongs to the fork
        server, which writes it for the owner (see ``ForkedProcess``)."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is None:
            return None
        try:
            code = process.poll()
        except Exception:
            return None
        return int(code) if code is not None else None

    def death(self) -> str:
        """``"the kernel died (SIGKILL)"``, ``"the kernel died (exit code 3)"``, or just that."""
        code = self.exit_status()
        end = time.monotonic() + 2 * ForkedProcess.STATUS_GRACE_S
        while code is None and not self.alive() and time.monotonic() < end:
            time.sleep(0.02)  # a forked kernel's status comes from the fork server, just after
            code = self.exit_status()
        if code is None or code == 0:
            return "the kernel died"
        if code < 0:
            try:
                return f"the kernel died ({signal.Signals(-code).name})"
            except ValueError:
                return f"the kernel died (signal {-code})"
        return f"the kernel died (exit code {code})"

    def kill(self, wait: float = 5.0) -> None:
        """SIGKILL the kernel and every process below it, and wait (up to ``wait`` seconds)
        until the kernel is dead."""
        below = descendants(self.pid)
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        for child in below:
            with contextlib.suppress(Exception):
                child.kill()
        end = time.monotonic() + wait
        while self.alive() and time.monotonic() < end:
            time.sleep(0.005)

    def cleanup_files(self) -> None:
        with contextlib.suppress(Exception):
            self.km.cleanup_connection_file()
        with contextlib.suppress(Exception):
            self.km.cleanup_ipc_files()
        ip = getattr(self.km, "ip", "")
        if getattr(self.km, "transport", "") == "ipc" and ip:
            folder = os.path.dirname(ip)
            if os.path.basename(folder).startswith("tmp"):
                shutil.rmtree(folder, ignore_errors=True)
