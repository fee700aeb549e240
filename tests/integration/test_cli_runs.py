"""`kfnb run`, `runs`, `show`, `logs`, `cancel` as a user types them, in real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from procs import processes_of, wait_for

from kfnb.tracking import Store

Write = Callable[..., Path]
KFNB = str(Path(sys.executable).with_name("kfnb"))
LONG = "import time\nfor _ in range(1200):\n    time.sleep(0.1)\nx = 1"


def kfnb(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KFNB, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=check,
        stdin=subprocess.DEVNULL,
    )


def runner(*args: str, mark: str, **kwargs: object) -> subprocess.Popen[str]:
    """`kfnb ARGS` in the background; it and every process it starts carry ``mark`` in their
    environment (the kernel fork server, the kernels forked from it or spawned)."""
    env = {**os.environ, "KFNB_TEST_MARK": mark}
    return subprocess.Popen([KFNB, *args], env=env, text=True, **kwargs)  # type: ignore[call-overload]


def kernels_started(mark: str, run: subprocess.Popen[str]) -> None:
    """Wait until the runner has the fork server and a kernel (so "none left" means something)."""
    wait_for(lambda: len(processes_of(mark, but=run.pid)) >= 2, "the run's kernel to start")


def first_running(store: Store) -> str:
    runs: list = []

    def found() -> bool:
        runs[:] = [r for r in store.list_runs() if r.steps and r.steps[0].status == "RUNNING"]
        return bool(runs)

    wait_for(found, "a running step")
    return str(runs[0].id)


def test_run_json_params_and_exit_code(write_notebook: Write) -> None:
    path = write_notebook(
        "p",
        ("pipeline-parameters", "n = 1\nname = 'x'"),
        ("step:a", "y = n * 2"),
        ("step:b", "z = y + 1"),
        ("pipeline-metrics", "print(z)"),
    )
    done = kfnb("run", str(path), "-p", "n", "4", "-p", "name", "big", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "SUCCEEDED"
    assert record["params"] == {"n": 4, "name": "big"}
    assert record["metrics"] == {"z": 9.0}
    step = record["steps"][0]
    assert {
        "name",
        "status",
        "started_at",
        "finished_at",
        "output_notebook",
        "log",
        "error",
    } <= set(step)
    assert Path(step["output_notebook"]).exists()
    shown = kfnb("show", record["id"][:12], "--json", check=True)
    assert json.loads(shown.stdout)["id"] == record["id"]
    listed = kfnb("runs", check=True).stdout
    assert record["id"] in listed and "SUCCEEDED" in listed


def test_parameter_type_error_names_parameter_and_value(write_notebook: Write) -> None:
    path = write_notebook("p", ("pipeline-parameters", "epochs = 10"), ("step:a", "x = epochs"))
    done = kfnb("run", str(path), "-p", "epochs", "many")
    assert done.returncode == 2
    assert done.stderr == (
        "kfnb: error: parameter 'epochs' is an int (default 10); 'many' is "
        "not an int. Fix: pass e.g. -p epochs 7\n"
    )
    assert kfnb("runs", "--json", check=True).stdout.strip() == "[]"  # nothing ran


def test_failed_run_exits_1_and_points_at_the_cell(write_notebook: Write) -> None:
    path = write_notebook(
        "f", ("step:a", "x = 1"), ("step:b", "y = x"), "raise ValueError('bad input data')"
    )
    done = kfnb("run", str(path))
    assert done.returncode == 1
    assert (
        "step 'b' failed at cell 2 (\"raise ValueError('bad input data')\"): "
        "ValueError: bad input data" in done.stdout
    )
    assert "full log: kfnb logs" in done.stdout
    run_id = json.loads(kfnb("runs", "--json", check=True).stdout)[0]["id"]
    logs = kfnb("logs", run_id, "b", check=True).stdout
    assert "ValueError: bad input data" in logs
    every = kfnb("logs", run_id, check=True).stdout
    assert "==> b <==" in every


def test_cancel_from_another_process(write_notebook: Write, store: Store) -> None:
    path = write_notebook("c", ("step:long", LONG), ("step:after", "y = x"))
    mark = uuid.uuid4().hex
    run = runner("run", str(path), mark=mark, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        run_id = first_running(store)
        kernels_started(mark, run)
        done = kfnb("cancel", run_id)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"run {run_id}: CANCELED"
        assert run.wait(timeout=60) == 1
        assert {s.name: s.status for s in store.get_run(run_id).steps} == {
            "long": "CANCELED",
            "after": "CANCELED",
        }
        wait_for(lambda: not processes_of(mark), "the run's processes to end", 30)
    finally:
        run.kill()


def test_ctrl_c_cancels_cleanly(write_notebook: Write, store: Store) -> None:
    path = write_notebook("i", ("step:long", LONG))
    mark = uuid.uuid4().hex
    run = runner("run", str(path), mark=mark, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        run_id = first_running(store)
        kernels_started(mark, run)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
        assert run.returncode == 1
        assert "cancelling" in err
        assert store.get_run(run_id).status == "CANCELED"
        assert not processes_of(mark)
    finally:
        run.kill()


def test_runner_crash_is_recovered_and_leaves_no_orphans(
    write_notebook: Write, store: Store
) -> None:
    path = write_notebook("k", ("step:long", LONG))
    mark = uuid.uuid4().hex
    run = runner("run", str(path), mark=mark, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_id = first_running(store)
    kernels_started(mark, run)
    metrics_before = store.events(run_id)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    wait_for(lambda: not processes_of(mark), "the fork server and kernels to follow the runner", 30)
    listed = kfnb("runs", "--json", check=True).stdout  # any CLI start recovers dead runs
    record = next(r for r in json.loads(listed) if r["id"] == run_id)
    assert record["status"] == "FAILED"
    assert f"runner process {run.pid}" in record["error"]
    assert record["steps"][0]["status"] == "FAILED"
    assert len(store.events(run_id)) > len(metrics_before)  # history kept, recovery appended


@pytest.mark.parametrize("command", [["show", "nope"], ["logs", "nope"], ["cancel", "nope"]])
def test_unknown_run_id(command: list[str]) -> None:
    done = kfnb(*command)
    assert done.returncode == 2
    assert "nope" in done.stderr and "kfnb runs" in done.stderr


def test_logs_follow_streams_a_running_step(
    write_notebook: Write, tmp_path: Path, store: Store
) -> None:
    gate = tmp_path / "gate"
    path = write_notebook(
        "s",
        (
            "step:talk",
            f"""
import pathlib, time
print("first line", flush=True)
deadline = time.monotonic() + 120
while not pathlib.Path({str(gate)!r}).exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print("last line", flush=True)
""",
        ),
    )
    runner = subprocess.Popen(
        [KFNB, "run", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        run_id = first_running(store)
        follower = subprocess.Popen(
            [KFNB, "logs", run_id, "talk", "--follow"], stdout=subprocess.PIPE, text=True
        )
        assert follower.stdout is not None
        assert follower.stdout.readline() == "first line\n"  # streamed while the step runs
        gate.touch()
        rest, _ = follower.communicate(timeout=120)
        assert follower.returncode == 0  # it ends by itself when the step ends
        assert "last line" in rest
        assert runner.wait(timeout=120) == 0
    finally:
        runner.kill()


def test_detach_refuses_a_run_this_process_drives(write_notebook: Write, store: Store) -> None:
    """--detach does not follow; a local run lives in the kfnb process, so it would end with
    it: refused with a fix before anything starts (the backend says so: ``detached``)."""
    path = write_notebook("d", ("step:a", "x = 1"))
    done = kfnb("run", str(path), "--detach")
    assert done.returncode == 2
    assert done.stderr == (
        "kfnb: error: --detach: a 'local' run is driven by this process and would end with it. "
        "Fix: drop --detach to follow it here, or pick a backend whose runs go on elsewhere "
        "(`kfnb backends` says which)\n"
    )
    assert store.list_runs() == []


def test_backend_options_reach_the_backend(write_notebook: Write) -> None:
    path = write_notebook("o", ("step:a", "x = 1"), ("step:b", "y = 2"))
    done = kfnb("run", str(path), "-O", "max-parallel=1", "--no-cache", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "SUCCEEDED"
    bad = kfnb("run", str(path), "--option", "max_parallel=many")
    assert bad.returncode == 2
    assert bad.stderr.startswith("kfnb: error: option 'max_parallel' must be an integer")
