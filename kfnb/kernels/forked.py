"""The owner's side of the fork server: start it, ask it for kernels, manage them like any other.

``ForkServer`` starts ``forkserver.py`` in a child process and asks it for kernels.
``ForkProvisioner`` is a jupyter_client kernel provisioner whose ``launch_kernel`` asks the fork
server instead of spawning ``python -m ipykernel_launcher``; everything else (connection file,
ports or IPC sockets, signals, shutdown) is jupyter_client's own, so papermill and nbclient see an
ordinary kernel manager. A forked kernel is not the owner's child: ``ForkedProcess`` follows it by
pid, and reads how it ended (a signal, an exit code) from the status file the fork server writes
as it reaps it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

from ..errors import KfnbError
from .processes import running

SERVER_ENTRY = "from kfnb.kernels.forkserver import main; raise SystemExit(main())"


class ForkServerError(KfnbError):
    """The fork server could not start or fork a kernel."""


class ForkServer:
    """A fork server process and the pipe to it. Thread-safe."""

    def __init__(self, preloads: list[str] | tuple[str, ...] = ()) -> None:
        self.preloads = list(preloads)
        self.proc: subprocess.Popen[str] | None = None
        self.pid: int | None = None
        self.failed_preloads: dict[str, str] = {}
        self.status_dir: str | None = None  # the server writes each kernel's exit status here
        self._lock = threading.RLock()
        self._next_id = 0
        self._stopped = False

    def start(self) -> None:
        """Start the server (returns at once; the first ``fork`` waits for it to be ready)."""
        with self._lock:
            if self._stopped:  # a start racing the owner's shutdown must not start it again
                raise ForkServerError("the kernel fork server was stopped")
            if self.proc is None:
                self.status_dir = tempfile.mkdtemp(prefix="kfnb-forks-")
                # debugpy (when a preload imports it) warns about frozen modules otherwise
                env = {
                    **os.environ,
                    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                    "KFNB_FORK_STATUS_DIR": self.status_dir,
                }
                self.proc = subprocess.Popen(
                    [sys.executable, "-c", SERVER_ENTRY, *self.preloads],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    bufsize=1,
                    start_new_session=True,
                    env=env,
                )

    def _ready(self) -> subprocess.Popen[str]:
        self.start()
        assert self.proc is not None and self.proc.stdout is not None
        if self.pid is None:
            hello = self._read()
            self.pid = int(hello["pid"])
            self.failed_preloads = hello.get("failed", {})
        return self.proc

    def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.poll()
            raise ForkServerError(
                f"the kernel fork server exited (code {code})",
                fix=f"check that ipykernel imports in {sys.executable}, or run without it "
                "(KFNB_FORK_SERVER=0)",
            )
        return dict(json.loads(line))

    def fork(self, argv: list[str], connection_file: str, cwd: str, env: dict[str, str]) -> int:
        """Fork a kernel; return its pid."""
        with self._lock:
            proc = self._ready()
            assert proc.stdin is not None
            self._next_id += 1
            request = {
                "id": self._next_id,
                "argv": argv,
                "connection_file": connection_file,
                "cwd": cwd,
                "env": env,
            }
            try:
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
            except OSError as err:
                raise ForkServerError(f"the kernel fork server is gone: {err}") from err
            reply = self._read()
            return int(reply["pid"])

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_status(self, pid: int) -> int | None:
        """How kernel ``pid`` ended as the server saw it (``Popen.returncode``), if it said."""
        if self.status_dir is None:
            return None
        try:
            with open(os.path.join(self.status_dir, str(pid)), encoding="ascii") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the server; it kills the kernels it forked."""
        with self._lock:
            self._stopped = True
            proc, self.proc, self.pid = self.proc, None, None
            status_dir, self.status_dir = self.status_dir, None
        if status_dir is not None:
            shutil.rmtree(status_dir, ignore_errors=True)
        if proc is None:
            return
        if self._next_id == 0:  # it forked nothing: no need to wait for it to finish importing
            proc.kill()
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            assert proc.stdout is not None
            proc.stdout.close()


_ahead: ForkServer | None = None  # started before its pool exists (``start_ahead``)
_ahead_lock = threading.Lock()


def start_ahead(preloads: list[str] | tuple[str, ...] = ()) -> None:
    """Start a fork server now for a kernel pool this process will create soon: it imports
    ipykernel (~0.3 s) meanwhile. ``take`` hands it to that pool; unused, it is stopped at
    exit."""
    global _ahead
    with _ahead_lock:
        if _ahead is not None:
            return
        server = ForkServer(preloads)
        server.start()
        _ahead = server
    atexit.register(_stop_ahead)


def take(preloads: list[str] | tuple[str, ...] = ()) -> ForkServer:
    """A started fork server for a pool preloading ``preloads``: the one started ahead when it
    preloads the same (else that one is stopped), or a new one."""
    global _ahead
    with _ahead_lock:
        server, _ahead = _ahead, None
    if server is not None and server.preloads == list(preloads) and server.alive:
        return server
    if server is not None:
        server.stop()
    server = ForkServer(preloads)
    server.start()
    return server


def _stop_ahead() -> None:
    global _ahead
    with _ahead_lock:
        server, _ahead = _ahead, None
    if server is not None:
        server.stop()


class ForkedProcess:
    """A kernel forked by the fork server, followed by pid (the ``Popen`` subset jupyter_client
    uses). Its exit status is the one the fork server wrote as it reaped it; where the server
    said nothing (it is gone too) it reads as -9.
    """

    stdin = stdout = stderr = None
    STATUS_GRACE_S = 1.0  # a kernel seen gone waits this long for the server to write its status

    def __init__(self, pid: int, server: ForkServer | None = None) -> None:
        self.pid = pid
        self.server = server
        self.returncode: int | None = None
        self._gone_since: float | None = None

    def poll(self) -> int | None:
        if self.returncode is not None or running(self.pid):
            return self.returncode
        code = self.server.exit_status(self.pid) if self.server is not None else None
        if code is None and self.server is not None and self.server.alive:
            # gone (or a zombie) a moment before the server wrote its status: not ended yet
            now = time.monotonic()
            self._gone_since = self._gone_since or now
            if now - self._gone_since < self.STATUS_GRACE_S:
                return None
        self.returncode = code if code is not None else -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # gone, its status not yet written
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkProvisioner(LocalProvisioner):  # type: ignore[misc]
    """Launches kernels by asking a ``ForkServer`` (set as ``fork_server`` before launch)."""

    fork_server: ForkServer | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        assert self.fork_server is not None
        connection_file, extra = split_kernel_argv(cmd)
        env = {k: str(v) for k, v in (kwargs.get("env") or os.environ).items()}
        cwd = str(kwargs.get("cwd") or os.getcwd())
        pid = self.fork_server.fork(extra, connection_file, cwd, env)
        self.process = ForkedProcess(pid, self.fork_server)  # type: ignore[assignment]  # Popen-like
        self.pid = pid
        self.pgid = pid  # the child called setsid()
        self.cwd = cwd
        return self.connection_info


def forkable(argv: list[str]) -> bool:
    """Whether a kernelspec's command is this interpreter's ipykernel (so it can be forked)."""
    if len(argv) < 3 or argv[1:3] != ["-m", "ipykernel_launcher"]:
        return False
    exe = argv[0]
    if exe in ("python", "python3", sys.executable):
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(exe, sys.executable)
    return False


def split_kernel_argv(cmd: list[str]) -> tuple[str, list[str]]:
    """``[python, -m, ipykernel_launcher, -f, FILE, *extra]`` -> ``(FILE, extra)``."""
    rest = list(cmd[3:])
    connection_file = ""
    extra = []
    i = 0
    while i < len(rest):
        if rest[i] == "-f" and i + 1 < len(rest):
            connection_file = rest[i + 1]
            i += 2
            continue
        if rest[i].startswith("--f="):
            connection_file = rest[i][4:]
        else:
            extra.append(rest[i])
        i += 1
    if not connection_file:
        raise ForkServerError(f"no connection file in the kernel command {cmd!r}")
    return connection_file, extra
