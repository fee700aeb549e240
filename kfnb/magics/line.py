"""``%kfnb COMMAND ...``: the command line inside a notebook.

The subcommands and their arguments are the CLI's (``kfnb.cli.parser.build_parser(magic=True)``,
which raises ``UsageError`` instead of exiting), and so are the commands ``describe``,
``compile``, ``runs``, ``show``, ``logs``, ``cancel`` and ``backends``
(``kfnb.cli.commands.dispatch``); ``run`` submits as the CLI does (``start_run``). Settings are
read once per call and passed down.
NOTEBOOK defaults to the notebook this kernel belongs to (under papermill: its input notebook).
``%kfnb run`` runs the *saved* file
(warning when this kernel ran code the file lacks), without blocking: it shows the run (a
``kfnb.widgets.RunWidget`` when available) and returns while the steps run in this kernel's
process, on its warm kernel pool; in a headless kernel (papermill) it waits for the run and
shows its final state as static HTML and text. ``%kfnb run --resume RUN`` goes on with a failed
run (``kfnb.run(resume=...)``). Errors print one line, ``kfnb: error: ...``, the traceback only
with ``%kfnb --debug ...``; ``--help`` prints help.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import traceback
from typing import Any

from ..cli.parser import UsageError, build_parser
from ..display import display_mode
from ..errors import KfnbError
from ..session import headless, notebook_path
from ..settings import Settings
from .session import display_path, unsaved_warning


def kfnb_magic(line: str) -> None:
    """``%kfnb describe|compile|run|runs|show|logs|cancel|backends|launch ...``
    (``%kfnb --help``)."""
    from IPython import get_ipython

    run_command(line, get_ipython())


def run_command(line: str, shell: Any, settings: Settings | None = None) -> int:
    """Run one ``%kfnb`` line; the exit status the CLI would have given (never raises for a
    user's mistake: those print ``kfnb: error: ...``). ``settings`` are read once per call
    (here, unless given)."""
    try:
        words = shlex.split(line)
    except ValueError as err:
        return _fail(UsageError(str(err), fix="check the quotes"))
    debug = "--debug" in words
    try:
        settings = settings if settings is not None else Settings.load()
        debug = debug or settings.debug
        args = build_parser(magic=True).parse_args(words)
        return _dispatch(args, shell, settings)
    except SystemExit as done:  # --help, --version: argparse printed them
        return int(done.code or 0) if isinstance(done.code, int) else 0
    except KfnbError as err:
        if debug and not isinstance(err, UsageError):
            traceback.print_exc()
        return _fail(err)
    except KeyboardInterrupt:  # `%kfnb logs -f` interrupted: the run goes on
        print("kfnb: interrupted", file=sys.stderr)
        return 130


def _fail(err: KfnbError) -> int:
    print(f"kfnb: error: {err}", file=sys.stderr)
    return 2


def _dispatch(args: argparse.Namespace, shell: Any, settings: Settings) -> int:
    from ..cli.commands import dispatch

    user_ns = getattr(shell, "user_ns", None)
    resuming = args.command == "run" and getattr(args, "resume", None)
    if args.command in ("describe", "compile", "run", "launch") and not resuming:
        args.notebook = notebook_path(args.notebook, user_ns, settings.env)
    if args.command == "run":
        return _run(args, shell, settings)
    if args.command == "launch":
        return _launch(args, settings)
    if args.command == "runs":
        return _runs(args, user_ns, settings)
    return dispatch(args, settings)  # describe, compile, show, logs, cancel, backends


def _in_a_step(settings: Settings) -> bool:
    from ..tracking.context import METRICS_FILE_ENV, STEP_ENV

    return bool(settings.getenv(STEP_ENV) or settings.getenv(METRICS_FILE_ENV))


def _run(args: argparse.Namespace, shell: Any, settings: Settings) -> int:
    from ..cli.commands import start_run

    if _in_a_step(settings):
        raise KfnbError(
            "%kfnb run inside a pipeline step would start a run from a run",
            fix="keep `%kfnb run` in a cell of its own (kfnb leaves such lines out of steps)",
        )
    warning = unsaved_warning(shell, args.notebook) if shell is not None else None
    if warning:
        print(warning, file=sys.stderr, flush=True)
    # not one-shot: the kernel's warm kernels serve its next runs
    run = start_run(args, settings, one_shot=False)
    if headless():  # papermill: the kernel, and the run's steps with it, end with the notebook
        print(f"run {run.id} of {run.record.name}: waiting for it to end", flush=True)
        run.wait()
    show_run(run, settings)
    return 0


def show_run(run: Any, settings: Settings | None = None) -> None:
    """The run's live widget when ``kfnb.widgets`` can be used, its static HTML snapshot and
    text in a headless kernel (papermill), else one line of text."""
    if display_mode() == "static":
        from IPython.display import display

        display(run)  # RunDisplay: the snapshot and text
        return
    widget = _widget("RunWidget")
    if widget is not None:
        widget(run, settings=settings).display()
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


def _runs(args: argparse.Namespace, user_ns: Any, settings: Settings) -> int:
    from ..cli.commands import runs

    try:
        args.notebook = notebook_path(None, user_ns, settings.env)
    except KfnbError:
        args.notebook = None  # not a notebook's kernel: every run
    # a headless kernel (papermill) gets the text table: a widget there is never rendered
    table = _runs_table() if display_mode() != "static" else None
    if table is not None and not args.json:
        shown = table(notebook=args.notebook, limit=args.limit, store=settings.store())
        from IPython.display import display

        display(shown)
        return 0
    if args.notebook is not None:
        print(f"runs of {display_path(args.notebook)} (newest first)")
    return runs(args, settings)


def _runs_table() -> Any:
    """``kfnb.runs`` (a table of runs for notebooks) where this kfnb has it."""
    import kfnb

    return getattr(kfnb, "runs", None)


def _launch(args: argparse.Namespace, settings: Settings) -> int:
    launcher = _widget("Launcher")
    if launcher is None:
        raise KfnbError(
            "the launcher needs kfnb.widgets (ipywidgets)",
            fix="use `%kfnb run -p NAME VALUE ...`",
        )
    from IPython.display import display

    display(launcher(args.notebook, settings=settings))
    return 0


def _widget(name: str) -> Any:
    """``kfnb.widgets.<name>``, or None where the widgets cannot be imported."""
    import importlib

    try:
        return getattr(importlib.import_module("kfnb.widgets"), name, None)
    except ImportError:
        return None
