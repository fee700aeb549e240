"""The kfnb command line: describe, materialize, and how errors are shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from kfnb.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_describe_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", str(EXAMPLES / "churn.ipynb")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Pipeline churn  (")
    assert "Every step: image=python:3.11-slim  label team=growth" in out
    assert "  compare  (cells 16)  after train_logreg, train_knn, train_baseline" in out
    assert "      in   customers  <- load_data" in out
    assert "  best_accuracy  <- compare" in out
    assert "  test_fraction  float  0.25" in out


def test_describe_json_has_the_ir(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", str(EXAMPLES / "churn.ipynb"), "--json"]) == 0
    ir = json.loads(capsys.readouterr().out)
    assert {"name", "parameters", "steps", "metrics"} <= set(ir)
    assert ir["parameters"]["seed"] == {"type": "int", "default": 7}
    compare = ir["steps"][-1]
    assert {"name", "after", "inputs", "outputs", "resources", "image"} <= set(compare)
    assert compare["inputs"] == {
        "acc_baseline": "train_baseline",
        "acc_knn": "train_knn",
        "acc_logreg": "train_logreg",
    }
    knn = next(s for s in ir["steps"] if s["name"] == "train_knn")
    assert knn["resources"] == {"cpu": "1"}
    assert ir["metrics"][0] == {"name": "best_accuracy", "step": "compare"}


def test_materialize(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "steps"
    assert main(["materialize", str(EXAMPLES / "sales_forecast.ipynb"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote 5 step notebooks" in text
    assert "run order: load -> features -> naive -> seasonal -> report" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "features.ipynb",
        "load.ipynb",
        "naive.ipynb",
        "pipeline.json",
        "report.ipynb",
        "seasonal.ipynb",
    ]
    nbformat.validate(nbformat.read(out / "report.ipynb", as_version=4))


def test_errors_are_one_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["setp:a"]})]
    nbformat.write(notebook, bad)
    before = bad.read_bytes()
    assert main(["describe", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"kfnb: error: {bad}, cell 0 ('x = 1'): unknown tag 'setp:a'. Fix: did you mean 'step:a'?\n"
    )
    assert bad.read_bytes() == before  # the user's notebook is never written


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "describe", str(tmp_path / "missing.ipynb")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "kfnb: error: no notebook at" in err


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("kfnb")  # installed beside this interpreter
    assert script.exists(), f"no kfnb console script at {script}"
    exe = str(script)
    done = subprocess.run(
        [exe, "describe", str(EXAMPLES / "churn.ipynb"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout)["name"] == "churn"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("kfnb ")
