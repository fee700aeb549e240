"""Execute one step notebook with papermill, on a fresh kernel the pool started ahead of time.

papermill does what it always does (parameters injected after the ``parameters`` cell, the
output notebook saved as cells run (here at most once a second, and at its end), stream output
copied to the step's log as it comes, a ``PapermillExecutionError`` naming the failing cell)
through the ``kfnb-step`` engine: papermill's nbclient engine, given the step's pre-started
kernel and a client already connected to it instead of starting a kernel of its own. The kernel
is the step's alone; the caller shuts it down afterwards.

The outcome is ``{"ok": true}`` or ``{"ok": false, "error": {...}}`` where the error names the
user's original cell (index and first line), the exception and its traceback. A kernel that died
(killed, out of memory, ``os._exit``) is one line for people, naming how it ended and the cell
it was running: ``step 'train' failed at cell 4 ('model.fit(X)'): the kernel died (SIGKILL)``.
The running cell is the last one papermill marked started, read from the notebook papermill
holds in memory (the one on disk lags it by up to ``SAVE_EVERY``, and may not have been written
at all on a full disk). Such an error has no ``traceback`` (that is for the user's code): where
kfnb noticed the death (nbclient's frames) is kept in its ``detail``.
Whatever else goes wrong here (a full disk while papermill writes the notebook or the log) is
an outcome too: ``execute_step`` does not raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import traceback
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import nbformat
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines

from ...kernels import WarmKernel

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ENGINE = "kfnb-step"  # not "kfnb": that is the papermill engine users select
SAVE_EVERY = timedelta(seconds=1)  # the step notebook on disk lags its cells by at most this


class WarmKernelEngine(NBClientEngine):
    """papermill's nbclient engine on a kernel started beforehand (``kfnb_kernel``, connected
    by ``kfnb_client``)."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: IO[str] | None = None,
        stderr_file: IO[str] | None = None,
        start_timeout: float = 60,
        execution_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        kernel: WarmKernel = kwargs.pop("kfnb_kernel")
        client = kwargs.pop("kfnb_client")
        kwargs.pop("kfnb_seen", {})["nb"] = nb_man.nb  # what ran so far, whatever is saved
        kwargs.pop("input_path", None)
        nb_client = PapermillNotebookClient(
            nb_man,
            km=kernel.km,
            kernel_name=kernel_name,
            log=logging.getLogger("papermill"),
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
            startup_timeout=start_timeout,
            timeout=execution_timeout,
            **kwargs,
        )
        nb_client.kc = client
        save = nb_man.save
        nb_man.save = _throttled(save, nb_man)
        try:
            return nb_client.execute()
        finally:  # papermill's own end-of-notebook save (after a dead kernel too) always writes
            nb_man.save = save


def _throttled(save: Callable[..., None], nb_man: Any) -> Callable[..., None]:
    """papermill saves the output notebook as every cell starts and ends (~6 ms a save here, most
    of a quick step's cost in the run's process): at most one save a ``SAVE_EVERY`` seconds while
    the step runs; the notebook's end is always saved."""

    def throttled(**kwargs: Any) -> None:
        if nb_man.now() - nb_man.last_save_time >= SAVE_EVERY:
            save(**kwargs)

    return throttled


class _NotNews(logging.Filter):
    """nbclient (through papermill's logger) logs an error for a kernel that died under a cell;
    the step's error says it already, in one line: a killed or cancelled step is not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Kernel died while waiting for execute reply")


papermill_engines.register(ENGINE, WarmKernelEngine)
logging.getLogger("papermill").setLevel(logging.WARNING)
logging.getLogger("papermill").addHandler(logging.NullHandler())
logging.getLogger("papermill").addFilter(_NotNews())


def execute_step(
    *,
    step: str,
    notebook: Path,
    output: Path,
    parameters: Mapping[str, Any],
    kernel: WarmKernel,
    cwd: str,
    env: Mapping[str, str],
    log: IO[str],
    kernel_name: str | None = None,
) -> dict[str, Any]:
    """Run ``notebook`` into ``output`` on ``kernel``; never raises for the step's own errors."""
    from jupyter_core.utils import ensure_event_loop

    # papermill and the client run their coroutines on this thread's event loop (jupyter_core's
    # run_sync makes one per thread and keeps it): close it with the step, or every step leaks
    # its file descriptors in a long-lived process
    loop = ensure_event_loop()
    try:
        return _execute(
            step=step,
            notebook=notebook,
            output=output,
            parameters=parameters,
            kernel=kernel,
            cwd=cwd,
            env=env,
            log=log,
            kernel_name=kernel_name,
        )
    finally:
        _close(loop)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Close the step thread's loop, first ending what a failed papermill left pending (else
    asyncio prints "Task was destroyed but it is pending!" on the user's screen)."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending and not loop.is_running():
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


def _execute(
    *,
    step: str,
    notebook: Path,
    output: Path,
    parameters: Mapping[str, Any],
    kernel: WarmKernel,
    cwd: str,
    env: Mapping[str, str],
    log: IO[str],
    kernel_name: str | None,
) -> dict[str, Any]:
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    try:
        client = kernel.connect(cwd=cwd, env=env)
    except Exception as err:
        if kernel.alive():
            return _could_not_run(step, err)
        return {"ok": False, "error": _died(step, kernel, {"role": "setup"})}
    seen: dict[str, Any] = {}
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=dict(parameters),
            engine_name=ENGINE,
            kernel_name=kernel_name,
            progress_bar=False,
            stdout_file=log,
            stderr_file=log,
            kfnb_kernel=kernel,
            kfnb_client=client,
            kfnb_seen=seen,
        )
    except PapermillExecutionError as err:
        error = failed_cell(output) or {
            "ename": err.ename,
            "evalue": err.evalue,
            "traceback": "\n".join(err.traceback),
        }
        error["message"] = describe(error, step)
        return {"ok": False, "error": error}
    except DeadKernelError:
        return {"ok": False, "error": _died(step, kernel, running_cell(output, seen.get("nb")))}
    except Exception as err:  # e.g. the notebook or the log could not be written: a full disk
        return _could_not_run(step, err)
    finally:
        client.stop_channels()
    return {"ok": True}


def _died(step: str, kernel: WarmKernel, where: dict[str, Any]) -> dict[str, Any]:
    """The error of a step whose kernel died ``where`` (a cell, or its set-up): one line, with
    where kfnb noticed it (nbclient's frames, not the user's) kept as ``detail``, not shown."""
    error = {
        **where,
        "ename": "DeadKernelError",
        "evalue": kernel.death(),
        "detail": traceback.format_exc(),
    }
    error["message"] = describe(error, step)
    return error


def _could_not_run(step: str, err: BaseException) -> dict[str, Any]:
    message = f"step {step!r} could not run: {type(err).__name__}: {err}"
    return {
        "ok": False,
        "error": {
            "message": message,
            "ename": type(err).__name__,
            "evalue": str(err),
            "traceback": traceback.format_exc(),
        },
    }


def _read(output_path: str | Path) -> Any:
    try:
        return nbformat.read(output_path, as_version=4)
    except (OSError, ValueError):  # not written (a full disk), or cut short
        return None


def _where(cell: Any) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("kfnb", {})
    first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
    return {"cell": meta.get("cell"), "cell_line": first.strip(), "role": meta.get("role")}


def failed_cell(output_path: str | Path) -> dict[str, Any]:
    """Where an executed step notebook failed, in terms of the user's notebook."""
    nb = _read(output_path)
    for cell in nb.cells if nb is not None else []:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return {
                    **_where(cell),
                    "ename": out.get("ename"),
                    "evalue": out.get("evalue"),
                    "traceback": "\n".join(ANSI.sub("", t) for t in out.get("traceback", [])),
                }
    return {}


def running_cell(output_path: str | Path, nb: Any = None) -> dict[str, Any]:
    """The cell an executed step notebook was running when it stopped (its kernel died): the
    last one papermill started (it marks each cell's ``start_time`` as it begins), in ``nb``
    (the notebook papermill ran, in memory) or else in the notebook saved at ``output_path``."""
    nb = nb if nb is not None else _read(output_path)
    started = [
        cell
        for cell in (nb.cells if nb is not None else [])
        if cell.get("metadata", {}).get("papermill", {}).get("start_time")
    ]
    return _where(started[-1]) if started else {}


def describe(error: dict[str, Any], step: str) -> str:
    """One line for people: ``step 'x' failed at cell 7 ('y = 1 / 0'): ZeroDivisionError: ...``."""
    where = ""
    if error.get("cell") is not None:
        where = f" at cell {error['cell']} ({error.get('cell_line', '')!r})"
    elif error.get("role") == "inputs":
        where = " while loading its inputs"
    elif error.get("role") == "outputs":
        where = " while saving its outputs"
    elif error.get("role") == "setup":
        where = " before its first cell"
    what = error.get("message", "")
    if error.get("ename") == "DeadKernelError":
        what = str(error.get("evalue") or "the kernel died")  # not an exception of the user's
    elif error.get("ename"):
        what = f"{error['ename']}: {error['evalue']}"
    return f"step {step!r} failed{where}: {what}".rstrip(": ")
