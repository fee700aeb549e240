"""IPython magics: ``%load_ext kfnb`` registers ``%%step``, ``%%train`` and ``%kfnb``.

Run interactively, ``%%step NAME [options]`` checks its options and runs the cell body as if the
header were not there; the same header tells the notebook parser where steps begin (see
``kfnb.notebook.magic``). A bad option fails the cell with the parser's message.

``%%train [--procs N] [--gpus N] [--wait]`` trains the cell's code as torchrun ranks (with the
notebook code and values it uses: ``kfnb.training.Program.from_cell``) and returns the job; its
options are ``kfnb train``'s.

``%kfnb COMMAND ...`` is the command line inside the notebook (``kfnb.magics.line``):
``%kfnb run`` starts a run of this kernel's (saved) notebook and returns at once.
"""

from __future__ import annotations

from typing import Any

from ..notebook.magic import MAGIC, parse_header
from ..notebook.tags import TagError


def step(line: str, cell: str) -> None:
    """Mark a cell as a pipeline step and run its body."""
    from IPython import get_ipython
    from IPython.core.error import UsageError

    try:
        parse_header(f"{MAGIC} {line}")
    except TagError as err:
        raise UsageError(f"{err.message}. {err.fix or ''}".strip()) from None
    shell = get_ipython()
    if shell is None:  # pragma: no cover - only callable from IPython
        raise RuntimeError("%%step runs inside IPython")
    result = shell.run_cell(cell)
    if not result.success:
        result.raise_error()


def train(line: str, cell: str) -> Any:
    """Train the cell's code as torchrun ranks; the job (``--wait``: once it ended)."""
    import os
    import shlex
    import sys

    from IPython import get_ipython
    from IPython.core.error import UsageError

    from ..cli.commands import train_how
    from ..cli.parser import train_cell_parser
    from ..errors import KfnbError
    from ..training import Program, submit

    shell = get_ipython()
    if shell is None:  # pragma: no cover - only callable from IPython
        raise RuntimeError("%%train runs inside IPython")
    try:
        args = train_cell_parser().parse_args(shlex.split(line))
        job = submit(Program.from_cell(cell, shell.user_ns), cwd=os.getcwd(), **train_how(args))
    except (KfnbError, ValueError) as err:
        raise UsageError(str(err)) from None
    if args.dry_run:
        return job  # the manifest
    print(f"training job {job.id}: {args.procs} process(es), {args.gpus} GPU(s)", flush=True)
    if args.wait:
        status = job.follow(sys.stdout)
        print(f"{status}" + (f": {job.error}" if job.error else ""), flush=True)
    return job


def load_ipython_extension(ipython: Any) -> None:
    from .line import kfnb_magic
    from .session import track_executions

    ipython.register_magic_function(step, magic_kind="cell", magic_name="step")
    ipython.register_magic_function(train, magic_kind="cell", magic_name="train")
    ipython.register_magic_function(kfnb_magic, magic_kind="line", magic_name="kfnb")
    track_executions(ipython)
