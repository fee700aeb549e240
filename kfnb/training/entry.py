"""The rank side of a training program (``program.py`` imports this): load the notebook values,
send the rank's output to its own log, call the function with its arguments, and leave a
failing rank's own traceback where the supervisor finds it.

Environment (set by the supervisor, ``kfnb.training.supervise``; torchrun adds ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``...):

- ``KFNB_TRAIN_DIR``: the job's folder; the rank writes ``logs/rank-N.log`` and, when it fails,
  ``errors/rank-N.json`` there. Unset (``python program.py`` by hand): output stays on the
  terminal and a failure is an ordinary traceback.
- ``KFNB_HOME``, ``KFNB_RUN_ID``: the run store and the job's run, for ``kfnb.log_metric``;
  ``KFNB_STEP`` becomes ``rank-N`` (a metric's source).
"""

from __future__ import annotations

import json
import linecache
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

TRAIN_DIR_ENV = "KFNB_TRAIN_DIR"


def rank() -> int:
    """This process's global rank (0 outside torchrun)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def rank_log(job: Path, n: int) -> Path:
    return job / "logs" / f"rank-{n}.log"


def rank_error(job: Path, n: int) -> Path:
    return job / "errors" / f"rank-{n}.json"


def load_values(program_file: str, names: list[str]) -> dict[str, Any]:
    """The notebook values the program reads, saved beside it by ``Program.write``."""
    from ..marshal import load_all
    from .program import VALUES_DIR

    return dict(load_all(Path(program_file).resolve().parent / VALUES_DIR, names, step="train"))


def main(fn: Callable[..., Any], program_file: str) -> None:
    """Run ``fn(**args)`` as one rank of the job."""
    from .program import ARGS_FILE

    folder = Path(program_file).resolve().parent
    args = json.loads((folder / ARGS_FILE).read_text())
    n = rank()
    os.environ["KFNB_STEP"] = f"rank-{n}"
    job = os.environ.get(TRAIN_DIR_ENV)
    if job:
        _to_log(rank_log(Path(job), n))
    try:
        fn(**args)
    except BaseException as err:
        if isinstance(err, SystemExit) and err.code in (0, None):
            raise
        if job:
            _record_error(Path(job), n, err)
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)  # no atexit work: the job failed here, the supervisor says so
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _to_log(path: Path) -> None:
    """Send this process's stdout and stderr (file descriptors too: C code, subprocesses) to
    ``path``, line by line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


def _record_error(job: Path, n: int, err: BaseException) -> None:
    path = rank_error(job, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "rank": n,
        "type": type(err).__name__,
        "message": str(err),
        "traceback": traceback.format_exc(),
        "time": time.time(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def run_file(
    program_file: str,
    name: str,
    namespace: dict[str, Any],
    argv: list[str] | None = None,
    path: str | None = None,
) -> None:
    """Run the file ``name`` beside the program in ``namespace`` (a cell in the program's
    globals; a script as ``__main__`` with ``argv`` and its folder ``path`` on ``sys.path``)."""
    file = Path(program_file).resolve().parent / name
    code = compile(file.read_text(), str(file), "exec")
    namespace.setdefault("__file__", str(file))
    if argv is not None:
        sys.argv = [str(file), *argv]
    if path is not None:
        sys.path.insert(0, path)
    exec(code, namespace)


def run_cells(program_file: str, name: str, namespace: dict[str, Any]) -> None:
    """Run the notebook cells listed in ``name`` (``{"notebook", "cells": [{index, source}]}``)
    in ``namespace``, in order; a traceback names the notebook and the cell."""
    listed = json.loads((Path(program_file).resolve().parent / name).read_text())
    notebook = Path(listed.get("notebook") or "notebook").name
    for cell in listed["cells"]:
        where = f"{notebook}, cell {cell['index']}"
        source = cell["source"]
        # so tracebacks show the cell's lines, as IPython's do
        linecache.cache[where] = (len(source), None, source.splitlines(True), where)
        exec(compile(source, where, "exec"), namespace)
