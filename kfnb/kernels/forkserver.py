"""The fork server: one process that imports ipykernel once and forks fresh kernels from it.

Starting a Python kernel costs ~0.5 s on these machines, nearly all of it importing ipykernel,
IPython, zmq and tornado. The fork server pays that once: it imports them (and the modules named
as preloads, e.g. ``numpy``), then waits for requests on stdin, one JSON object a line::

    {"id": 1, "argv": ["--HistoryManager.hist_file=:memory:"], "connection_file": "...",
     "cwd": "/path", "env": {...}}

and answers each on stdout with ``{"id": 1, "pid": 1234}``. Each kernel is a forked child in a
session of its own that initialises a brand-new ``IPKernelApp`` (its own sockets, shell and
namespace), so a forked kernel is as fresh as a spawned one: nothing a step does reaches another
kernel. The child re-seeds ``random`` (CPython does on fork) and numpy's global generator, so
forked kernels do not share random streams.

The server starts no thread before forking (fork and threads do not mix). It blocks on stdin:
when its owner goes away, stdin reaches EOF and the server kills every kernel it forked and
exits. Each kernel's ``JPY_PARENT_PID`` is the server, so ipykernel's own parent poller ends a
kernel whose server died. An idle server and its idle kernels use no CPU.

A forked kernel is the server's child, not the owner's: only the server learns how it ended. It
writes each kernel's exit status, as ``Popen.returncode`` reads (``-9``: SIGKILL, ``3``:
``os._exit(3)``), to the file named by the kernel's pid in the folder ``KFNB_FORK_STATUS_DIR``
names, before it reaps the kernel; the owner's ``ForkedProcess`` reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from typing import Any

# What every kernel imports while it starts (``IPKernelApp.initialize`` imports half of it, ~70 ms
# a kernel when left to the children) and what every step's inputs and outputs cells import.
KERNEL_MODULES = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.debugger",  # decides whether kernels have a debugger (``_without_debugger``)
    "IPython.core.completer",
    "IPython.core.completerlib",
    "IPython.core.debugger",
    "IPython.core.oinspect",
    "IPython.extensions.storemagic",
    "pdb",
    "faulthandler",
    "psutil",
    "sqlite3",
    "tornado.platform.asyncio",
    "importlib.resources.readers",
    "unicodedata",
    "kfnb.marshal",
)

children: set[int] = set()
status_dir: str | None = None  # where each kernel's exit status is written (its pid names it)


def _reap(signum: int = 0, frame: Any = None) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _record_exit(pid, status)


def _record_exit(pid: int, status: int) -> None:
    """Write how kernel ``pid`` ended where the owner looks (written whole, then renamed)."""
    if status_dir is None:
        return
    with contextlib.suppress(OSError, ValueError):
        path = os.path.join(status_dir, str(pid))
        with open(path + ".part", "w", encoding="ascii") as f:
            f.write(str(os.waitstatus_to_exitcode(status)))
        os.replace(path + ".part", path)


def _forget_exit(pid: int) -> None:
    """A new kernel has pid ``pid``: the status of an earlier kernel with that pid is stale."""
    if status_dir is not None:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(status_dir, str(pid)))


def _kill_children() -> None:
    for pid in list(children):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _preload(modules: list[str]) -> dict[str, str]:
    failed = {}
    for name in modules:
        try:
            __import__(name)
        except Exception as err:  # a preload is an optimisation: report it, go on without it
            failed[name] = f"{type(err).__name__}: {err}"
    return failed


def _prime() -> None:
    """Do once here what every forked kernel would otherwise do alike as it starts:

    - kfnb's serializer registry reads the installed packages' entry points (~18 ms a kernel, at
      its step's first value saved or loaded: on the critical path where parallel steps end
      together; installed plugins themselves still load in the kernels that use them);
    - traitlets parses a kernel's command line (the regular expressions it compiles and the
      parser it builds are cached; ~10 ms a kernel): a throwaway ``IPKernelApp`` (not the
      singleton each kernel creates) parses one like the kernels'.

    An optimisation: a failure here changes nothing but the time."""
    with contextlib.suppress(Exception):
        if "kfnb.marshal" in sys.modules:
            sys.modules["kfnb.marshal"].registry.default_registry.load_entry_points_ahead()
    with contextlib.suppress(Exception):
        from ipykernel.kernelapp import IPKernelApp

        from .pool import HISTORY_IN_MEMORY  # the argument every pool's kernel gets

        IPKernelApp().parse_command_line([HISTORY_IN_MEMORY])


def _without_debugger(preloads: list[str]) -> None:
    """Start kernels without ipykernel's debugger: nobody attaches one to a step's kernel (papermill
    drives it), and importing debugpy for it costs the server ~70 ms. ipykernel decides when it
    is imported, so debugpy is hidden from it here and given back to each kernel (``_child``): a
    step may still ``import debugpy`` itself."""
    if "debugpy" not in preloads and "debugpy" not in sys.modules:
        sys.modules["debugpy"] = None  # type: ignore[assignment]  # import fails: no debugger


def _reseed() -> None:
    """Give a forked kernel random streams of its own: preloaded libraries' global generators
    were copied from the server (CPython re-seeds ``random`` on fork by itself)."""
    if "numpy.random" in sys.modules:
        sys.modules["numpy.random"].seed()
    if "torch" in sys.modules and hasattr(sys.modules["torch"], "seed"):
        with contextlib.suppress(Exception):
            sys.modules["torch"].seed()


def _child(request: dict[str, Any], requests_fd: int, replies_fd: int) -> None:  # pragma: no cover
    """In the forked child: become a kernel. Never returns."""
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})  # blocked by ``serve``
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.close(requests_fd)
        os.close(replies_fd)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["JPY_PARENT_PID"] = str(os.getppid())
        os.chdir(request["cwd"])
        if "debugpy" in sys.modules and sys.modules["debugpy"] is None:
            del sys.modules["debugpy"]  # hidden from ipykernel only (``_without_debugger``)
        _reseed()
        from ipykernel.kernelapp import IPKernelApp

        sys.argv = ["ipykernel_launcher", "-f", request["connection_file"], *request["argv"]]
        app = IPKernelApp.instance()
        app.initialize(sys.argv[1:])
        app.start()
        code = 0
    finally:
        os._exit(code)


def serve(preloads: list[str]) -> int:  # pragma: no cover - runs in the server process
    global status_dir
    status_dir = os.environ.pop("KFNB_FORK_STATUS_DIR", None) or None
    requests_fd = os.dup(0)
    replies_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # a preload that prints must not break the protocol
    os.close(devnull)
    replies = os.fdopen(replies_fd, "w", buffering=1)
    _without_debugger(preloads)
    failed = _preload([*KERNEL_MODULES, *preloads])
    _prime()
    if threading.active_count() > 1:  # forking a process with threads could deadlock a child
        failed["threads"] = f"{threading.active_count() - 1} thread(s) started by the preloads"
    signal.signal(signal.SIGCHLD, _reap)
    replies.write(json.dumps({"ready": True, "pid": os.getpid(), "failed": failed}) + "\n")
    with os.fdopen(requests_fd, "r") as requests:
        for line in requests:
            if not line.strip():
                continue
            request = json.loads(line)
            # no reaping between the fork and forgetting a stale status of the new pid: a
            # kernel that ends at once still has its own status written
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            pid = os.fork()
            if pid == 0:
                _child(request, requests.fileno(), replies_fd)
            children.add(pid)
            _forget_exit(pid)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            replies.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
    _kill_children()  # the owner closed our stdin, or went away
    replies.close()
    os._exit(0)  # no interpreter teardown of the preloaded modules (~0.1 s): nothing to flush


def main() -> int:  # pragma: no cover - runs in the server process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the owner's terminal is the owner's
    return serve([m for m in sys.argv[1:] if m])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
