"""``%kfnb COMMAND ...``: the command line inside a notebook.

The subcommands and their arguments are the CLI's (``kfnb.cli.build_parser(magic=True)``), and
so is the rendering of ``describe``, ``compile``, ``runs``, ``show``, ``logs`` and ``cancel``.
NOTEBOOK defaults to the notebook this kernel belongs to. ``%kfnb run`` runs the *saved* file
(warning when this kernel ran code the file lacks), without blocking: it shows the run (a
``kfnb.widgets.RunWidget`` when available) and returns while the steps run in this kernel's
process, on its warm kernel pool. Errors print one line, ``kfnb: error: ...``, the traceback only
with ``%kfnb --debug ...``; ``--help`` prints help.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from typing import Any, NoReturn

from ..errors import KfnbError
from .session import display_path, notebook_path, unsaved_warning

PROG = "%kfnb"


class ArgumentError(Exception):
    """A bad ``%kfnb`` command line (argparse would have exited)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ArgumentError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    from .. import cli

    parser = cli.build_parser(PROG, magic=True, parser_class=_Parser)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    launch = sub.add_parser("launch", help="show a form to set parameters and start runs")
    launch.add_argument(
        "notebook",
        nargs="?",
        default=None,
        help="the notebook (default: the one this kernel belongs to)",
    )
    return parser


def kfnb_magic(line: str) -> None:
    """``%kfnb describe|compile|run|runs|show|logs|cancel|launch ...`` (``%kfnb --help``)."""
    from IPython import get_ipython

    run_command(line, get_ipython())


def run_command(line: str, shell: Any) -> int:
    """Run one ``%kfnb`` line; the exit status the CLI would have given (never raises for a
    user's mistake: those print ``kfnb: error: ...``)."""
    try:
        words = shlex.split(line)
    except ValueError as err:
        return _fail(f"{err} (check the quotes)")
    debug = "--debug" in words or os.environ.get("KFNB_DEBUG") not in (None, "", "0")
    try:
        args = build_parser().parse_args(words)
    except ArgumentError as err:
        return _fail(str(err))
    except SystemExit as done:  # --help, --version: argparse printed them
        return int(done.code or 0) if isinstance(done.code, int) else 0
    try:
        return _dispatch(args, shell)
    except (KfnbError, ArgumentError) as err:
        if debug:
            traceback.print_exc()
        return _fail(str(err))
    except KeyboardInterrupt:  # `%kfnb logs -f` interrupted: the run goes on
        print("kfnb: interrupted", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    print(f"kfnb: error: {message}", file=sys.stderr)
    return 2


def _dispatch(args: argparse.Namespace, shell: Any) -> int:
    user_ns = getattr(shell, "user_ns", None)
    if args.command in ("describe", "compile", "run", "launch"):
        args.notebook = notebook_path(args.notebook, user_ns)
    if args.command == "run":
        return _run(args, shell)
    if args.command == "launch":
        return _launch(args)
    if args.command == "runs":
        return _runs(args, user_ns)
    return int(args.func(args) or 0)  # describe, compile, show, logs, cancel: as the CLI


def _in_a_step() -> bool:
    from ..tracking.context import METRICS_FILE_ENV, STEP_ENV

    return bool(os.environ.get(STEP_ENV) or os.environ.get(METRICS_FILE_ENV))


def _run(args: argparse.Namespace, shell: Any) -> int:
    from .. import cli

    if _in_a_step():
        raise KfnbError(
            "%kfnb run inside a pipeline step would start a run from a run. Fix: "
            "keep `%kfnb run` in a cell of its own (kfnb leaves such lines out of "
            "steps)"
        )
    warning = unsaved_warning(shell, args.notebook) if shell is not None else None
    if warning:
        print(warning, file=sys.stderr, flush=True)
    run = cli.start_run(args, pool_size=None)  # the kernel's warm pool serves its next runs
    show_run(run)
    return 0


def show_run(run: Any) -> None:
    """The run's live widget when ``kfnb.widgets`` can be used, else one line of text."""
    widget = _widget("RunWidget")
    if widget is not None:
        widget(run).display()
        return
    record = run.record
    where = record.remote.get("url") if record.remote else None
    print(
        f"started run {record.id} of {record.name} ({record.status.lower()}"
        + (f", {where}" if where else "")
        + f"); follow it: %kfnb show {record.id}, or "
        f"kfnb show {record.id} in a terminal",
        flush=True,
    )


def _runs(args: argparse.Namespace, user_ns: Any) -> int:
    from .. import cli

    try:
        args.notebook = notebook_path(None, user_ns)
    except KfnbError:
        args.notebook = None  # not a notebook's kernel: every run
    table = _runs_table()
    if table is not None and not args.json:
        try:
            shown = table(notebook=args.notebook, limit=args.limit)
        except TypeError:
            shown = table(notebook=args.notebook)
        from IPython.display import display

        display(shown)
        return 0
    if args.notebook is not None:
        print(f"runs of {display_path(args.notebook)} (newest first)")
    return int(cli.cmd_runs(args) or 0)


def _runs_table() -> Any:
    """``kfnb.runs`` (a table of runs for notebooks) where this kfnb has it."""
    import kfnb

    return getattr(kfnb, "runs", None)


def _launch(args: argparse.Namespace) -> int:
    launcher = _widget("Launcher")
    if launcher is None:
        raise KfnbError(
            "the launcher needs kfnb.widgets (ipywidgets). Fix: use `%kfnb run -p NAME VALUE ...`"
        )
    from IPython.display import display

    display(launcher(args.notebook))
    return 0


def _widget(name: str) -> Any:
    """``kfnb.widgets.<name>``, or None where the widgets cannot be imported."""
    import importlib

    try:
        return getattr(importlib.import_module("kfnb.widgets"), name, None)
    except ImportError:
        return None
