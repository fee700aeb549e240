"""kfnb's own processes skip a slow optional import and freeze what they hold until exit; user
processes keep everything as it was."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

needs_rfc3987 = pytest.mark.skipif(
    importlib.util.find_spec("rfc3987_syntax") is None,
    reason="rfc3987_syntax is not installed here: nothing to skip",
)
CHURN = Path(__file__).resolve().parents[2] / "examples" / "churn.ipynb"


def python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()


@needs_rfc3987
def test_the_cli_skips_it() -> None:
    out = python(
        "import sys, contextlib, io; from kfnb.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['describe', {str(CHURN)!r}])\n"
        "import jsonschema; print(sys.modules['rfc3987_syntax'])"
    )
    assert out == "None"


@needs_rfc3987
def test_importing_kfnb_in_a_user_process_changes_nothing() -> None:
    out = python(
        "import gc, kfnb, kfnb.marshal, kfnb.tracking, sys, jsonschema; "
        "print(sys.modules['rfc3987_syntax'] is not None, gc.get_freeze_count())"
    )
    assert out == "True 0"


# an atexit function registered first runs last: it sees what the interpreter's exit will walk
FROZEN_AT_EXIT = (
    "import atexit, contextlib, gc, io, sys\n"
    "atexit.register(lambda: print('at exit', gc.get_freeze_count() > 0))\n"
    "from kfnb.cli import main\n"
)


def test_the_kfnb_command_freezes_what_it_holds_until_it_exits() -> None:
    """The ``kfnb`` command ends with its job: what it holds is frozen for the collector, so
    neither full collections nor the interpreter's exit walk it (0.25-0.3 s an exit)."""
    out = python(
        FROZEN_AT_EXIT + f"sys.argv = ['kfnb', 'describe', {str(CHURN)!r}]\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main()\n"
        "print('after', gc.get_freeze_count() > 0)"
    )
    assert out.splitlines() == ["after True", "at exit True"]


def test_a_program_calling_kfnbs_main_keeps_its_collector() -> None:
    out = python(
        FROZEN_AT_EXIT + "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['describe', {str(CHURN)!r}])\n"
        "print('after', gc.get_freeze_count() > 0)"
    )
    assert out.splitlines() == ["after False", "at exit False"]
