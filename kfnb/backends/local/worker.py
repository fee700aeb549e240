"""Run one step notebook with papermill, in a process of its own.

The scheduler starts ``main(SPEC.json)`` in a new Python process and process group (through
``scheduler.WORKER_ENTRY``, which first skips slow optional imports, see ``kfnb._startup``),
with stdout and stderr going to the step's log file. The worker executes the step notebook with
papermill (a fresh kernel, parameters injected the papermill way, the user's notebook folder as
working directory), streams the kernel's output into the log as it comes, and writes a result
file: ``{"ok": true}`` or ``{"ok": false, "error": {...}}`` where the error names the user's
original cell (index and first line), the exception and its traceback.

On SIGTERM (cancel, timeout) it kills its whole process group, the kernel included, so no
process outlives the step; it does the same if the runner that started it disappears.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import nbformat

from .processes import descendants

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _kill_group(signum: int = 0, frame: Any = None) -> None:  # pragma: no cover - in the child
    for child in descendants(os.getpid()):
        with contextlib.suppress(Exception):
            child.kill()
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _watch_parent(parent: int, interval: float = 1.0) -> None:  # pragma: no cover - in the child
    """If the runner dies (kill -9, a crash), take the step and its kernel down with it."""
    while True:
        if os.getppid() != parent:
            _kill_group()
        time.sleep(interval)


def failed_cell(output_path: str | Path) -> dict[str, Any]:
    """Where an executed step notebook failed, in terms of the user's notebook."""
    try:
        nb = nbformat.read(output_path, as_version=4)
    except (OSError, ValueError):
        return {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                meta = cell.get("metadata", {}).get("kfnb", {})
                first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
                return {
                    "cell": meta.get("cell"),
                    "cell_line": first.strip(),
                    "role": meta.get("role"),
                    "ename": out.get("ename"),
                    "evalue": out.get("evalue"),
                    "traceback": "\n".join(ANSI.sub("", t) for t in out.get("traceback", [])),
                }
    return {}


def describe(error: dict[str, Any], step: str) -> str:
    """One line for people: ``step 'x' failed at cell 7 ('y = 1 / 0'): ZeroDivisionError: ...``."""
    where = ""
    if error.get("cell") is not None:
        where = f" at cell {error['cell']} ({error.get('cell_line', '')!r})"
    elif error.get("role") == "inputs":
        where = " while loading its inputs"
    elif error.get("role") == "outputs":
        where = " while saving its outputs"
    what = error.get("message", "")
    if error.get("ename"):
        what = f"{error['ename']}: {error['evalue']}"
    return f"step {step!r} failed{where}: {what}".rstrip(": ")


_socket_dirs: list[str] = []


def kernel_manager_class() -> type:
    """Kernels talk to their worker over local IPC sockets, not TCP ports: nothing listens on
    the network, and no port can clash between parallel steps. ``KFNB_KERNEL_TRANSPORT=tcp``
    goes back to TCP."""
    from jupyter_client.manager import AsyncKernelManager

    transport = os.environ.get("KFNB_KERNEL_TRANSPORT", "ipc")

    class StepKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = transport
            if transport == "ipc":  # sockets in a folder of this kernel's own
                folder = tempfile.mkdtemp(prefix="kfnb-kernel-")
                _socket_dirs.append(folder)
                self.ip = os.path.join(folder, "ipc")


    return StepKernelManager


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        papermill.execute_notebook(
            spec["notebook"], spec["output"], parameters=spec.get("parameters") or {},
            kernel_name=spec.get("kernel_name"), cwd=spec.get("cwd"), progress_bar=False,
            stdout_file=sys.stdout, stderr_file=sys.stderr,
            start_timeout=spec.get("start_timeout", 120),
            kernel_manager_class=kernel_manager_class(),
        )
    except PapermillExecutionError as err:
        error = failed_cell(spec["output"]) or {"ename": err.ename, "evalue": err.evalue,
                                                "traceback": "\n".join(err.traceback)}
        error["message"] = describe(error, spec["step"])
        return {"ok": False, "error": error}
    except Exception as err:  # the kernel died, could not start, ...
        message = f"step {spec['step']!r} could not run: {type(err).__name__}: {err}"
        return {"ok": False, "error": {"message": message, "ename": type(err).__name__,
                                       "evalue": str(err), "traceback": traceback.format_exc()}}
    finally:
        for folder in _socket_dirs:
            shutil.rmtree(folder, ignore_errors=True)
    return {"ok": True}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    signal.signal(signal.SIGTERM, _kill_group)
    # the runner's pid comes in the spec: a worker orphaned before it got here must notice too
    runner = int(spec.get("runner_pid") or os.getppid())
    threading.Thread(target=_watch_parent, args=(runner,), daemon=True).start()
    result = run(spec)
    sys.stdout.flush()
    sys.stderr.flush()
    tmp = Path(spec["result"] + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, spec["result"])
    if not result["ok"]:
        print(f"\n{result['error'].get('message', 'failed')}", file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
