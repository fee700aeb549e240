"""The installed distribution registers both extensions with Jupyter.

These run the real ``jupyter`` commands of this environment, from a temporary working directory
so that the source tree cannot stand in for the installed package.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

import kfnb


def _jupyter(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"jupyter {' '.join(args)} failed:\n{output}"
    return output


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_tests_import_the_installed_package() -> None:
    dist = distribution("kfnb")
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        pytest.skip("editable install: kfnb is imported from the source tree on purpose")
    installed = Path(str(dist.locate_file("kfnb"))).resolve()
    assert Path(kfnb.__file__).resolve().parent == installed, (
        f"tests import kfnb from {kfnb.__file__}, not from the installed wheel in {installed}; "
        "run the venv's pytest executable (scripts/test), not `python -m pytest` from the repo root"
    )


def test_server_extension_is_enabled_and_loads(tmp_path: Path) -> None:
    output = _strip_ansi(_jupyter("server", "extension", "list", cwd=tmp_path))

    assert re.search(r"^\s*kfnb enabled\s*$", output, re.M), output
    assert re.search(r"^\s*- Validating kfnb\.\.\.\s*\n\s*kfnb\s+\S+\s+OK", output, re.M), output


def test_lab_extension_is_enabled(tmp_path: Path) -> None:
    output = _strip_ansi(_jupyter("labextension", "list", cwd=tmp_path))

    line = next((ln for ln in output.splitlines() if ln.strip().startswith("kfnb ")), None)
    assert line is not None, f"kfnb is not among the lab extensions:\n{output}"
    assert "enabled" in line and "OK" in line, line
    assert "(python, kfnb)" in line, line
