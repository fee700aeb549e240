"""The ``kfnb`` command line.

``parser`` defines the arguments (shared with the ``%kfnb`` magic: ``build_parser(magic=True)``),
``commands`` holds one function per subcommand (arguments -> one library call -> rendering,
picked by ``dispatch``), ``render`` the text they print. ``main`` is the entry point: it reads
the settings once, runs the command and maps errors once: a ``KfnbError`` prints one line
(``kfnb: error: ...``) and exits 2; the traceback is shown only with ``--debug`` or
``KFNB_DEBUG=1``.
"""

from __future__ import annotations

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
        print(f"kfnb: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kfnb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kfnb describe ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
