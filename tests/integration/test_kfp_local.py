"""The compiled pipeline, executed for real by KFP's own local runner (``kfp.local`` with
``SubprocessRunner(use_venv=False)``): the component code that would run in the pods, on the same
YAML that would be submitted. Its values and metrics must equal a run of the local backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kfnb
from kfnb.backends.kfp.local_run import LocalKfpError, run_compiled

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digits_gpu.ipynb"
SMALL = {"epochs": 8, "n_trees": 20}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)


def test_the_example_runs_under_kfp_local_with_the_local_backends_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    compiled = kfnb.compile(EXAMPLE, tmp_path / "digits.yaml")
    text = compiled.path.read_text()
    assert "resourceType: nvidia.com/gpu" in text  # the GPU step asks for its GPU

    remote = run_compiled(compiled, SMALL, pipeline_root=tmp_path / "root")
    # this machine has no GPU: the local backend is told it has one, which the step then finds
    # missing (CUDA) and falls back to the CPU, as the pod's code did under kfp.local
    local = kfnb.run(EXAMPLE, SMALL, gpus=["0"], cache=False)
    assert local.status == "SUCCEEDED", local.record.error

    steps = [s.name for s in kfnb.Pipeline.from_notebook(EXAMPLE).steps]
    assert steps == ["load", "train_forest", "train_logreg", "train_mlp", "compare"]
    for step in steps:
        ours, theirs = remote.outputs(step), local.outputs(step)
        assert ours.keys() == theirs.keys(), step
        assert all(same(ours[k], theirs[k]) for k in ours), step
    assert remote.outputs("train_mlp")["mlp_device"] == "cpu"

    # pipeline metrics and kfnb.log_metric (the network's last loss) reach the Metrics artifact
    metrics = remote.metrics()
    assert set(metrics) == {"best_accuracy", "acc_forest", "acc_logreg", "acc_mlp", "mlp_loss"}
    assert metrics == pytest.approx(local.metrics, rel=1e-12)
    assert remote.metrics("compare") == {"best_accuracy": local.metrics["best_accuracy"]}

    # each step's executed notebook and its HTML rendering are artifacts
    executed = remote.executed_notebook("train_mlp").read_text()
    assert "network on cpu" in executed
    html = (remote.task_dir("train_mlp") / "kfnb_html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "network on cpu" in html


def test_a_failing_step_fails_the_kfp_local_run_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_notebook: Callable[..., Path]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_notebook(
        "fails",
        ("pipeline-parameters", "n = 3"),
        ("step:make", "values = list(range(n))"),
        ("step:boom", "total = sum(values)\nraise ValueError(f'bad total {total}')"),
        ("step:after", "print(total)"),
    )
    compiled = kfnb.compile(path, tmp_path / "fails.yaml")
    with pytest.raises(LocalKfpError, match=r"'fails' failed under kfp\.local"):
        run_compiled(compiled, {"n": 4}, pipeline_root=tmp_path / "root")
    runs = list((tmp_path / "root").iterdir())
    assert len(runs) == 1
    boom = runs[0] / "boom"
    # the executed notebook with the traceback is kept for the post-mortem
    executed = (boom / "kfnb_notebook").read_text()
    assert "ValueError" in executed and "bad total 6" in executed
    assert not (runs[0] / "after").exists()


def test_kfnb_compile_run_local(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_notebook: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kfnb.cli import main

    monkeypatch.chdir(tmp_path)
    path = write_notebook(
        "one",
        ("pipeline-parameters", "n = 3"),
        ("step:square", "squared = n * n"),
        ("pipeline-metrics", "print(squared)"),
    )
    assert (
        main(
            ["compile", str(path), "-o", str(tmp_path / "one.yaml"), "--run-local", "-p", "n", "7"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "kfp.local: all 1 steps succeeded" in out and "squared = 49" in out


def test_data_files_reach_the_pods_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_notebook: Callable[..., Path]
) -> None:
    """A step that reads a file next to the notebook works under kfp.local run from elsewhere:
    the compiled pipeline carries the files listed in kfnb.files."""
    path = write_notebook(
        "reads",
        ("step:load", "import csv\nrows = list(csv.reader(open('data/values.csv')))"),
        ("step:total", "total = sum(int(r[0]) for r in rows)"),
        ("pipeline-metrics", "print(total)"),
        metadata={"kfnb": {"files": ["data/*.csv"]}},
    )
    (path.parent / "data").mkdir()
    (path.parent / "data" / "values.csv").write_text("1\n2\n39\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    remote = run_compiled(
        kfnb.compile(path, tmp_path / "reads.yaml"), pipeline_root=tmp_path / "root"
    )
    assert remote.metrics() == {"total": 42.0}
    assert list(elsewhere.iterdir()) == []  # the pods' folders are their own
