"""The kfnb command line: describe, materialize, and how errors are shown."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# -- backends, runs, show, logs: from the store, no kernels -------------------------------------
@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KFNB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KFNB_CONFIG", str(tmp_path / "none.yaml"))
    return tmp_path / "home"


def test_backends_lists_availability_and_options(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfnb.backends import get_backend

    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("local: available: this machine: ") and "\nkfp: " in out
    assert "\n  max_parallel  int  [$KFNB_MAX_PARALLEL]\n" in out
    assert re.search(r"\n  cache +bool = true  \[\$KFNB_CACHE\]\n +reuse earlier results", out)
    assert re.search(r"\n  host +str  \[\$KFNB_KFP_HOST, \$KF_PIPELINES_ENDPOINT\]\n", out)
    assert "kernel_transport" not in out and "token" not in out  # hidden options
    assert main(["backends", "--json"]) == 0
    listed = {b["name"]: b for b in json.loads(capsys.readouterr().out)}
    assert list(listed)[:2] == ["local", "kfp"]  # registration order: the default first
    assert listed["local"]["available"] is True
    assert (listed["local"]["detached"], listed["kfp"]["detached"]) == (False, True)
    local = {o["name"]: o for o in listed["local"]["options"]}
    expected = {o.name: o.to_dict() for o in get_backend("local").options() if not o.hidden}
    assert local == expected
    assert local["pool_size"] == {
        "name": "pool_size",
        "type": "int",
        "default": 2,
        "help": "fresh kernels kept ready in this process between runs",
        "env": ["KFNB_POOL_SIZE"],
        "nullable": False,
    }
    assert {"host", "namespace", "experiment"} <= {o["name"] for o in listed["kfp"]["options"]}


def _pipeline_run(store: Any, parent: str | None = None, kind: str = "pipeline") -> Any:
    from nbbuild import build_notebook

    from kfnb import Pipeline
    from kfnb.spec import pipeline_spec

    pipeline = Pipeline.from_nb(
        build_notebook(
            ("pipeline-parameters", "n = 2"),
            ("step:load", "x = n"),
            ("step:fit", "y = x * 2"),
            ("step:report", "print(y)"),
        )
    )
    record = store.create_run(
        kind=kind,
        name="demo",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={"n": 2},
        steps=[s.name for s in pipeline.steps],
        parent_id=parent,
        spec=pipeline_spec(pipeline) if kind == "pipeline" else None,
    )
    return record


def test_runs_lists_top_level_runs_with_their_child_count(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfnb.tracking import Store

    store = Store(home)
    batch = _pipeline_run(store, kind="batch")
    children = [_pipeline_run(store, parent=batch.id) for _ in range(2)]
    alone = _pipeline_run(store)
    assert main(["runs"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(rows) == {batch.id, alone.id}
    assert rows[batch.id].split()[-5:] == ["batch", "2", "0", "B", "local"]  # SIZE: 0 B
    assert rows[alone.id].split()[-4:] == ["pipeline", "0", "B", "local"]
    assert main(["runs", "--all", "--json"]) == 0
    listed = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(listed) == {batch.id, alone.id, *(c.id for c in children)}
    assert listed[batch.id]["child_count"] == 2 and listed[alone.id]["child_count"] == 0
    assert listed[alone.id]["disk_bytes"] == 0
    assert main(["runs", "--kind", "batch", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [batch.id]


def test_runs_kind_is_checked(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--kind", "pipelin"]) == 2
    assert capsys.readouterr().err == (
        "kfnb: error: unknown run kind 'pipelin'. Fix: did you mean 'pipeline'? "
        "kinds are: pipeline, train, tune, trial, batch\n"
    )


def test_show_prints_the_tree_and_the_stored_pipeline(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfnb.tracking import Store

    store = Store(home)
    batch = _pipeline_run(store, kind="batch")
    first = _pipeline_run(store, parent=batch.id)
    second = _pipeline_run(store, parent=batch.id)
    store.set_run_status(second.id, "RUNNING")
    assert main(["show", batch.id]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"demo  run {batch.id}  PENDING")
    assert "  kind: batch" in out
    assert f"Children (2)\n  · {first.id}  pipeline  demo  PENDING" in out
    assert f"\n  ▶ {second.id}  pipeline  demo  RUNNING" in out
    assert out.index(first.id) < out.index(second.id)  # oldest first
    assert main(["show", first.id]) == 0
    out = capsys.readouterr().out
    assert f"kind: pipeline, under run {batch.id}" in out
    assert "Pipeline main as it ran (3 steps, in run order)\n  parameters: n: int\n" in out
    assert "  fit     (cells 2)\n      <- load  x\n  report  (cells 3)\n      <- fit  y\n" in out
    assert main(["show", batch.id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in shown["children"]] == [first.id, second.id]
    assert shown["children"][0]["spec"]["pipeline"]["edges"] == [
        {"source": "load", "target": "fit", "variables": ["x"]},
        {"source": "fit", "target": "report", "variables": ["y"]},
    ]


def test_logs_pages_through_each_step(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfnb.backends import LOG_PAGE
    from kfnb.tracking import Store

    store = Store(home)
    record = _pipeline_run(store)
    big = "é" * LOG_PAGE + "\nend of load\n"  # more than a page, cut inside a character
    for name, text in (("load", big), ("fit", "fitting\n")):
        log = tmp_path / f"{name}.log"
        log.write_text(text, encoding="utf-8")
        store.set_step_status(record.id, name, "RUNNING", log=str(log))
        store.set_step_status(record.id, name, "SUCCEEDED")
    assert main(["logs", record.id, "load"]) == 0
    assert capsys.readouterr().out == big
    assert main(["logs", record.id]) == 0
    assert capsys.readouterr().out == f"==> load <==\n{big}==> fit <==\nfitting\n"
    assert main(["logs", record.id, "nope"]) == 2
    assert "nope" in capsys.readouterr().err
