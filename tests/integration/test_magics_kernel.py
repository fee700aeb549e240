"""examples/magics_pipeline.ipynb in a real kernel, as Jupyter runs it: top to bottom, then its
last cell (`%kfnb run -p n 4`) starts a pipeline run of the saved file and returns at once; the
run goes on in the kernel's process and lands in the store. The CLI gives the same metric."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from procs import wait_for

from kfnb.tracking import TERMINAL_RUN, Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "magics_pipeline.ipynb"
KFNB = str(Path(sys.executable).with_name("kfnb"))


def _text(cell: nbformat.NotebookNode, name: str) -> str:
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == name
    )


def test_the_example_runs_top_to_bottom_and_starts_a_run(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    path = folder / EXAMPLE.name
    shutil.copy(EXAMPLE, path)
    monkeypatch.setenv("JPY_SESSION_NAME", EXAMPLE.name)  # as jupyter-server sets it
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    run_cell = next(i for i, c in enumerate(nb.cells) if c.source.startswith("%kfnb run"))
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
            if index == run_cell:
                # the cell has returned: the run was started and is still going on (its first
                # step sleeps 2 s), in this kernel's process
                runs = store.list_runs()
                assert len(runs) == 1 and runs[0].status not in TERMINAL_RUN, runs
        started = nb.cells[run_cell]
        assert "kfnb: error" not in _text(started, "stderr")
        assert "warning" not in _text(started, "stderr")  # what ran is what is saved
        out = _text(started, "stdout")
        if out:  # no kfnb.widgets: the text fallback
            assert out.startswith(f"started run {runs[0].id} ")
        assert "total = 50" in _text(nb.cells[run_cell - 3], "stdout")  # interactive, n = 3
        wait_for(lambda: store.get_run(runs[0].id).status in TERMINAL_RUN, "the run to end")
    record = store.get_run(runs[0].id)
    assert record.status == "SUCCEEDED", record
    assert record.params["n"] == 4 and record.metrics == {"total": 130.0}
    assert record.notebook == str(path.resolve())
    assert [s.name for s in record.steps] == ["load", "squares", "cubes", "report"]

    done = subprocess.run(
        [KFNB, "run", str(path), "-p", "n", "4", "--no-cache", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    cli = json.loads(done.stdout)
    assert cli["status"] == "SUCCEEDED" and cli["metrics"] == record.metrics
    assert len(store.list_runs()) == 2  # the `%kfnb run` cell started no run of its own
