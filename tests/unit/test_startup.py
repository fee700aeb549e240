"""kfnb's own processes skip a slow optional import; user processes keep everything as it was
(their collector too)."""

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
