"""The ``kfnb`` command line.

``parser`` defines the arguments (shared with the ``%kfnb`` magic: ``build_parser(magic=True)``),
``commands`` holds one function per subcommand (arguments -> one library call -> rendering,
picked by ``dispatch``), ``render`` the text they print. ``main`` is the entry point: it reads
the settings once, runs the command and maps errors once: a ``KfnbError`` prints one line
(``kfnb: error: ...``) and exits 2; the traceback is shown only with ``--debug`` or
``KFNB_DEBUG=1``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import traceback
from collections.abc import Sequence

from ..errors import KfnbError
from .parser import UsageError, build_parser
from .render import render

__all__ = ["UsageError", "build_parser", "main", "render"]


def main(argv: Sequence[str] | None = None) -> int:
    from .._startup import skip_slow_optional_imports
    from ..settings import Settings
    from .commands import dispatch

    skip_slow_optional_imports()
    for stream in (sys.stdout, sys.stderr):  # a name of undecodable bytes prints, escaped
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    words = list(sys.argv[1:] if argv is None else argv)
    # `kfnb train fit.py --procs 2 -- --lr 0.1`: what follows -- is the script's
    passed = words[words.index("--") + 1 :] if "--" in words else []
    if "--" in words:
        words = words[: words.index("--")]
    args = build_parser().parse_args(words)
    if passed:
        if getattr(args, "command", None) != "train":
            build_parser().error("arguments after -- are for `kfnb train` scripts only")
        args.argv = [*args.argv, *passed]
    debug = args.debug
    try:
        settings = Settings.load()
        debug = debug or settings.debug
        return int(dispatch(args, settings) or 0)
    except KfnbError as err:
        if debug:
            traceback.print_exc()
        print(f"kfnb: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kfnb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kfnb describe ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (RecursionError, MemoryError) as err:  # an input too large that no check caught
        if debug:
            traceback.print_exc()
        refused = KfnbError(
            f"an input is too large or nested too deeply to process ({type(err).__name__})",
            fix="make it smaller (run with --debug to see where)",
        )
        print(f"kfnb: error: {refused}", file=sys.stderr)
        return 2


#: The longest error line printed: an error names what is wrong, it does not repeat a value.
MAX_ERROR = 1000


def one_line(text: str) -> str:
    """An error message as one terminal line of at most ``MAX_ERROR`` characters: control
    characters (newlines, escapes, NUL, a right-to-left override) are shown escaped."""
    shown = "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )
    if len(shown) > MAX_ERROR:
        shown = f"{shown[: MAX_ERROR - 40]}... ({len(shown)} chars in all)"
    return shown
