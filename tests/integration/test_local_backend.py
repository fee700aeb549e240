"""The local backend with real kernels and papermill."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from procs import wait_for

import kfnb
from kfnb.backends import BackendError
from kfnb.backends.local import LocalConfig
from kfnb.tracking import Store

ROOT = Path(__file__).resolve().parents[2]
Write = Callable[..., Path]


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


BARRIER = """
import pathlib, time
pathlib.Path({dir!r}, {me!r}).touch()
deadline = time.monotonic() + 120
while not pathlib.Path({dir!r}, {other!r}).exists():
    assert time.monotonic() < deadline, "{other} never ran at the same time as {me}"
    time.sleep(0.05)
{me}_value = {value}
"""


def test_fan_out_steps_run_at_the_same_time(
    write_notebook: Write, tmp_path: Path, store: Store
) -> None:
    # b and c each wait until the other has started: a scheduler that ran them one after the
    # other could never finish this pipeline.
    d = str(tmp_path)
    path = write_notebook(
        "fan",
        ("step:a", "base = 40"),
        ("step:b", BARRIER.format(dir=d, me="b", other="c", value="base + 1")),
        ("step:c", BARRIER.format(dir=d, me="c", other="b", value="base + 2")),
        ("step:join", "total = b_value + c_value"),
    )
    run = kfnb.run(path, store=store, max_parallel=2)
    assert run.status == "SUCCEEDED", run.record.to_dict()
    b, c = run.record.step("b"), run.record.step("c")
    assert max(b.started_at, c.started_at) < min(b.finished_at, c.finished_at)
    assert run.outputs("join") == {} and run.outputs("c") == {"c_value": 42}
    assert run.record.step("join").started_at >= max(b.finished_at, c.finished_at)


def test_failure_skips_downstream_and_independent_branches_finish(
    write_notebook: Write, store: Store
) -> None:
    path = write_notebook(
        "fail",
        ("step:a", "x = 1"),
        ("step:bad", "y = x + 1"),
        "z = y / 0",
        ("step:after_bad", "w = z + 1"),
        (["step:other", "prev:a"], "v = x * 2"),
    )
    run = kfnb.run(path, store=store)
    rec = run.record
    assert rec.status == "FAILED"
    states = {s.name: s.status for s in rec.steps}
    assert states == {
        "a": "SUCCEEDED",
        "bad": "FAILED",
        "after_bad": "SKIPPED",
        "other": "SUCCEEDED",
    }
    error = rec.step("bad").error
    assert error["cell"] == 2 and error["cell_line"] == "z = y / 0"
    assert error["ename"] == "ZeroDivisionError"
    assert error["message"] == (
        "step 'bad' failed at cell 2 ('z = y / 0'): ZeroDivisionError: division by zero"
    )
    assert "ZeroDivisionError" in run.logs("bad")
    assert "step 'bad' failed at cell 2" in rec.error
    assert "did not succeed" in rec.step("after_bad").error["message"]


def test_retries_run_a_failed_step_again(
    write_notebook: Write, tmp_path: Path, store: Store
) -> None:
    counter = tmp_path / "attempts"
    path = write_notebook(
        "retry",
        (
            ["step:flaky", "retries:2"],
            f"""
import pathlib
p = pathlib.Path({str(counter)!r})
n = int(p.read_text()) + 1 if p.exists() else 1
p.write_text(str(n))
if n < 2:
    raise RuntimeError(f"flaky failure on attempt {{n}}")
result = n
""",
        ),
        ("step:use", "final = result"),
    )
    run = kfnb.run(path, store=store)
    assert run.status == "SUCCEEDED"
    flaky = run.record.step("flaky")
    assert flaky.attempt == 2 and counter.read_text() == "2"
    assert "flaky failure on attempt 1" in run.logs("flaky")
    assert "--- attempt 2 ---" in run.logs("flaky")
    assert [e.data["attempt"] for e in store.events(run.id) if e.kind == "retry"] == [1]


def test_timeout_stops_the_step_and_its_kernel(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "slow",
        (["step:slow", "timeout:3"], "import time\nfor _ in range(600):\n    time.sleep(0.1)"),
    )
    run = kfnb.run(path, store=store, wait=False)
    scheduler = run.handle.scheduler  # type: ignore[union-attr]
    wait_for(
        lambda: "slow" in scheduler.running and scheduler.running["slow"].kernel is not None,
        "the step's kernel",
    )
    pgid = scheduler.running["slow"].kernel.pid
    run.wait(timeout=120)
    rec = run.record
    assert rec.status == "FAILED"
    assert rec.step("slow").error["message"] == "step 'slow' timed out after 3 s and was stopped"
    wait_for(lambda: group_gone(pgid), "the kernel to be reaped", 10)


def test_cancel_kills_running_steps_and_marks_the_rest(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "cancel",
        ("step:long", "import time\nfor _ in range(1200):\n    time.sleep(0.1)\nx = 1"),
        ("step:later", "y = x"),
    )
    run = kfnb.run(path, store=store, wait=False)
    scheduler = run.handle.scheduler  # type: ignore[union-attr]
    wait_for(
        lambda: "long" in scheduler.running and scheduler.running["long"].kernel is not None,
        "the step's kernel",
    )
    pgid = scheduler.running["long"].kernel.pid
    run.cancel()
    run.wait(timeout=60)
    rec = run.record
    assert rec.status == "CANCELED"
    assert {s.name: s.status for s in rec.steps} == {"long": "CANCELED", "later": "CANCELED"}
    wait_for(lambda: group_gone(pgid), "the kernel to be reaped", 10)


def test_gpu_slots_are_assigned_from_the_pool(write_notebook: Write, store: Store) -> None:
    read = "import os\ndevices_{n} = os.environ.get('CUDA_VISIBLE_DEVICES')"
    path = write_notebook(
        "gpus",
        (["step:two_a", "limit:nvidia.com/gpu:2"], read.format(n="a")),
        (["step:two_b", "limit:nvidia.com/gpu:2"], read.format(n="b")),
        (["step:one", "limit:gpu:1"], read.format(n="c")),
    )
    run = kfnb.run(path, store=store, config=LocalConfig(gpus=["0", "1", "2"], max_parallel=3))
    assert run.status == "SUCCEEDED"
    rec = run.record
    a, b = rec.step("two_a"), rec.step("two_b")
    assert len(a.gpus) == 2 and len(b.gpus) == 2 and len(rec.step("one").gpus) == 1
    # two steps wanting 2 of 3 GPUs cannot overlap
    assert a.finished_at <= b.started_at or b.finished_at <= a.started_at
    with pytest.raises(BackendError, match="asks for 2 GPUs, but this machine has 1"):
        kfnb.run(path, store=store, config=LocalConfig(gpus=["7"]))


def test_gpu_ids_reach_the_kernel(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "gpu_env",
        (["step:train", "limit:gpu:2"], "import os\nseen = os.environ['CUDA_VISIBLE_DEVICES']"),
        ("step:report", "got = seen"),
    )
    run = kfnb.run(path, store=store, config=LocalConfig(gpus=["3", "5"]))
    assert run.status == "SUCCEEDED"
    assert run.outputs("train") == {"seen": "3,5"}


def test_values_of_several_types_flow_and_metrics_are_recorded(store: Store) -> None:
    source = ROOT / "examples" / "sales_forecast.ipynb"
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    run = kfnb.run(source, {"horizon": 7}, store=store)
    assert run.status == "SUCCEEDED", run.record.error
    assert run.params["horizon"] == 7
    features = run.outputs("features")
    assert isinstance(features["train"], pd.DataFrame) and len(features["test"]) == 7
    seasonal = run.outputs("seasonal")
    assert type(seasonal["seasonal"]).__name__ == "Forecast"  # a notebook-defined class
    assert isinstance(seasonal["seasonal"].values, np.ndarray)
    assert seasonal["mae_seasonal"] == pytest.approx(run.metrics["mae_seasonal"])
    assert set(run.metrics) == {"mae_naive", "mae_seasonal"}
    assert "best:" in run.logs("report")
    executed = Path(run.record.step("report").output_notebook)
    assert executed.exists() and executed.parent.parent == Path(run.record.artifacts_dir)
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before  # never written


def test_log_metric_in_a_step_and_relative_paths(
    write_notebook: Write, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_notebook(
        "metrics",
        (
            "step:train",
            """
import kfnb
rows = open("data/train.csv").read().splitlines()
for i, loss in enumerate([0.9, 0.5, 0.3]):
    kfnb.log_metric("loss", loss, step=i)
kfnb.log_param("rows", len(rows))
""",
        ),
    )
    (path.parent / "data").mkdir()
    (path.parent / "data" / "train.csv").write_text("a,b\n1,2\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the step still runs in the notebook's own folder
    run = kfnb.run(path, store=store)
    assert run.status == "SUCCEEDED", run.record.error
    history = store.metrics(run.id, "loss")
    assert [(m.step, m.value, m.source) for m in history] == [
        (0, 0.9, "train"),
        (1, 0.5, "train"),
        (2, 0.3, "train"),
    ]
    assert run.metrics["loss"] == 0.3


def test_two_runs_at_once_on_one_store(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "twice", ("pipeline-parameters", "n = 1"), ("step:a", "x = n * 2"), ("step:b", "y = x + 1")
    )
    first = kfnb.run(path, {"n": 1}, store=store, wait=False)
    second = kfnb.run(path, {"n": 5}, store=Store(store.home), wait=False)
    first.wait(120)
    second.wait(120)
    assert (first.status, second.status) == ("SUCCEEDED", "SUCCEEDED")
    assert first.outputs("b") == {} and first.outputs("a") == {"x": 2}
    assert second.outputs("a") == {"x": 10}
    assert {r.id for r in store.list_runs()} >= {first.id, second.id}


def test_the_scikit_learn_example_runs_end_to_end(store: Store) -> None:
    run = kfnb.run(ROOT / "examples" / "cancer_models.ipynb", {"n_estimators": 50}, store=store)
    assert run.status == "SUCCEEDED", run.record.error
    assert set(run.metrics) == {
        "best_accuracy",
        "accuracy_logreg",
        "accuracy_forest",
        "accuracy_svm",
    }
    assert run.metrics["best_accuracy"] == max(
        run.metrics[k] for k in run.metrics if k.startswith("accuracy_")
    )
    forest = run.outputs("train_forest")["forest"]
    assert type(forest).__name__ == "RandomForestClassifier" and forest.n_estimators == 50
    assert hasattr(forest, "estimators_")  # fitted in its step, handed on fitted
    spans = [(s.started_at, s.finished_at) for s in run.steps if s.name.startswith("train_")]
    overlapping = any(
        max(a[0], b[0]) < min(a[1], b[1]) for i, a in enumerate(spans) for b in spans[i + 1 :]
    )
    assert overlapping, "no two model-training steps ran at the same time"


def test_a_long_lived_process_leaks_no_file_descriptors(
    write_notebook: Write, store: Store
) -> None:
    """A notebook kernel or the Jupyter server runs many runs: each step's event loop, client
    sockets and store connection must be closed, not left to the garbage collector."""
    from kfnb.kernels import PoolConfig, shared_pool

    path = write_notebook(
        "fds", ("step:a", "x = 1"), ("step:b", "y = x + 1"), ("step:c", "z = y + 1")
    )
    pool = shared_pool(PoolConfig(size=0))

    def open_fds_after_a_run() -> int:
        run = kfnb.run(path, store=store, cache=False, pool_size=0)
        assert run.status == "SUCCEEDED"
        assert pool.wait_idle(timeout=30)  # used kernels shut down
        wait_for(lambda: pool.stats()["starting"] == 0, "the pool to settle", 30)
        return len(os.listdir("/proc/self/fd"))

    first = open_fds_after_a_run()
    for _ in range(3):
        last = open_fds_after_a_run()
    assert last - first <= 3, f"{last - first} file descriptors more after 3 runs of 3 steps"


def test_a_step_env_reaches_only_that_steps_kernel(write_notebook: Write, store: Store) -> None:
    assert "GREETING" not in os.environ
    path = write_notebook(
        "step_env",
        (
            ["step:greet", "env:GREETING:hello", "env:URL:http://host:8080/x"],
            "import os\ngreeting = os.environ['GREETING']\nurl = os.environ['URL']\n"
            "me = os.environ['KFNB_STEP']",
        ),
        ("step:plain", "import os\nplain_sees = os.environ.get('GREETING')"),
        ("step:report", "seen = (greeting, url, me, plain_sees)"),
    )
    run = kfnb.run(path, store=store, cache=False)
    assert run.status == "SUCCEEDED", run.record.error
    assert run.outputs("greet") == {"greeting": "hello", "url": "http://host:8080/x", "me": "greet"}
    assert run.outputs("plain") == {"plain_sees": None}
