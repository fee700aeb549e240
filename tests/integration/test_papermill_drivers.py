"""Driver notebooks run headless by papermill (a nightly job): they wait for their runs, and the
output notebook keeps the runs' final state as static HTML and text (no widget model)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from kfnb.tracking import Store

Write = Callable[..., Path]
PAPERMILL = str(Path(sys.executable).with_name("papermill"))
ROOT = Path(__file__).resolve().parents[2]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def papermill(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("JPY_SESSION_NAME", None)
    env.pop("KFNB_NOTEBOOK", None)
    env.pop("KFNB_HEADLESS", None)
    return subprocess.run(
        [PAPERMILL, *args, "--kernel", "python3"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def outputs(path: Path, marker: str) -> list[dict[str, Any]]:
    """The outputs of the (only) cell of ``path`` whose source holds ``marker``."""
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    return list(cell.outputs)


def shown(outs: list[dict[str, Any]]) -> dict[str, Any]:
    """The one rich output (display or result) among ``outs``."""
    rich = [o for o in outs if o["output_type"] in ("display_data", "execute_result")]
    assert len(rich) == 1, outs
    data: dict[str, Any] = rich[0]["data"]
    return data


@pytest.fixture
def project(write_notebook: Write) -> Path:
    return write_notebook("pipe", ("step:a", "x = 1"), ("step:b", "y = x + 1")).parent


def test_a_driver_waits_and_keeps_the_final_state(
    project: Path, write_notebook: Write, store: Store
) -> None:
    driver = write_notebook(
        "driver",
        "import kfnb\nrun = kfnb.run('pipe.ipynb', wait=True)\nrun",
        "print('done', run.status)",
    )
    done = papermill(driver.name, "out.ipynb", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    data = shown(outputs(project / "out.ipynb", "kfnb.run("))
    assert WIDGET_MIME not in data  # no widget model nobody renders
    (run,) = store.list_runs(limit=5)
    assert run.status == "SUCCEEDED"
    text, page = data["text/plain"], data["text/html"]
    assert f"run {run.id}" in text and "SUCCEEDED" in text
    assert all(step in text for step in ("a", "b"))
    assert run.id in page and "SUCCEEDED" in page
    stream = "".join(o.get("text", "") for o in outputs(project / "out.ipynb", "print('done'"))
    assert "done SUCCEEDED" in stream


def test_kfnb_magic_finds_its_notebook_under_papermill(
    project: Path, write_notebook: Write, store: Store, tmp_path: Path
) -> None:
    driver = write_notebook(
        "nightly",
        "%load_ext kfnb",
        ("step:a", "x = 2"),
        ("step:b", "y = x * 3"),
        "%kfnb run",
    )
    # papermill runs in another folder than the kernel (--cwd): the input path is papermill's
    done = papermill(
        f"{project.name}/{driver.name}", "out.ipynb", "--cwd", project.name, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outs = outputs(tmp_path / "out.ipynb", "%kfnb run")
    stream = "".join(o.get("text", "") for o in outs if o["output_type"] == "stream")
    assert "cannot tell which notebook" not in stream
    assert "waiting for it to end" in stream
    (run,) = store.list_runs(limit=5)
    assert run.notebook == str(driver.resolve())
    assert run.status == "SUCCEEDED"  # waited for: the kernel ended after the run did
    data = shown(outs)
    assert WIDGET_MIME not in data
    assert "SUCCEEDED" in data["text/plain"] and run.id in data["text/html"]


def test_the_injected_input_path_names_the_notebook(project: Path) -> None:
    from kfnb.session import notebook_path

    # `papermill --inject-input-path` sets PAPERMILL_INPUT_PATH in the notebook's namespace
    found = notebook_path(None, {"PAPERMILL_INPUT_PATH": "pipe.ipynb"}, {}, cwd=project)
    assert found == project / "pipe.ipynb"
