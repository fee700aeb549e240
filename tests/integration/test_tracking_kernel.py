"""A real kernel run by papermill records metrics and parameters into the run store through
``kfnb.tracking.log_metric``/``log_param``, finding its run from the environment it inherits."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from kfnb.tracking import Store

CODE = """\
import kfnb.tracking as tracking
tracking.log_param("lr", 0.01)
tracking.log_metric("acc", 0.9)
for i in range(5):
    tracking.log_metric("loss", 1.0 / (i + 1), step=i)
"""


def test_a_kernel_logs_into_its_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "home")
    run = store.create_run(
        kind="pipeline",
        name="tiny",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={},
        steps=["train"],
    )
    store.set_run_status(run.id, "RUNNING")
    store.set_step_status(run.id, "train", "RUNNING")
    notebook = tmp_path / "tiny.ipynb"
    nbformat.write(
        new_notebook(
            cells=[new_code_cell(CODE)],
            metadata={
                "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
            },
        ),
        notebook,
    )
    monkeypatch.setenv("KFNB_HOME", str(store.home))
    monkeypatch.setenv("KFNB_RUN_ID", run.id)
    monkeypatch.setenv("KFNB_STEP", "train")
    monkeypatch.delenv("KFNB_METRICS_STDOUT", raising=False)

    papermill.execute_notebook(
        str(notebook),
        str(tmp_path / "out.ipynb"),
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
        log_output=False,
    )

    record = store.get_run(run.id)
    assert record.metrics == {"acc": 0.9, "loss": 0.2}
    assert record.params == {"lr": 0.01}
    assert [(m.step, m.value, m.source) for m in store.metrics(run.id, "loss")] == [
        (i, 1.0 / (i + 1), "train") for i in range(5)
    ]
    outputs = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs
    assert not [o for o in outputs if o.get("name") == "stderr"]  # no "not inside a run" warning
