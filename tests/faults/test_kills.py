"""kill -9 of every process kfnb runs a run with, and the cancels that kill kernels.

Each case kills one process mid-work: a step's kernel (and one that ends itself with
``os._exit``), the runner of a ``kfnb run``, one rank of a ``kfnb train`` job, the runner of a
``kfnb tune`` study, the Jupyter server driving a run. Each checks what every fault case must
keep: the run and its children reach a terminal state with the cause recorded (what died, in
one line), what was recorded before is kept, no process outlives its owner, no traceback on
the user's screen; a run whose runner died ends when it died, not when somebody noticed. Each
prints one line ``fault=... runs=... terminal=... lost=... leaked=...`` (``pytest -s``).

Already covered elsewhere, not repeated here: a kernel killed under ``kfnb.run`` (the step's
error names the signal and the cell: ``tests/integration/test_failures.py``), a ``kfnb run``
runner killed (recovered, no orphans: ``test_cli_runs.py``), a killed ``kfnb tune`` resumes
(``test_tuning_local.py``), a rank raising an error (``test_training_local.py``).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from procs import processes_of, wait_for

import kfnb
from kfnb.tracking import TERMINAL_RUN, Run, Store

ROOT = Path(__file__).resolve().parents[2]
KFNB = str(Path(sys.executable).with_name("kfnb"))
JUPYTER = str(Path(sys.executable).with_name("jupyter"))
FOREVER = "while True:\n    time.sleep(0.05)"


def notebook(path: Path, *cells: tuple[str | None, str]) -> Path:
    """A notebook of ``(tag or None, source)`` cells at ``path``."""
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        }
    )
    for tag, source in cells:
        nb.cells.append(new_code_cell(source, metadata={"tags": [tag] if tag else []}))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def env(mark: str) -> dict[str, str]:
    """This test's environment (its KFNB_HOME), every process started under it marked."""
    return {**os.environ, "KFNB_TEST_MARK": mark, "PYTHONPATH": str(ROOT)}


def spawn(args: list[str], mark: str, out: Path, **kw: Any) -> subprocess.Popen[bytes]:
    """``args`` in the background, its stdout and stderr to ``out``.out / ``out``.err."""
    with open(out.with_suffix(".out"), "wb") as stdout, open(out.with_suffix(".err"), "wb") as err:
        return subprocess.Popen(
            args, env=env(mark), stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, **kw
        )


def screen(out: Path) -> str:
    """What a user saw of a background command: its stdout and stderr."""
    return out.with_suffix(".out").read_text() + out.with_suffix(".err").read_text()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``kfnb ARGS`` to the end (any CLI start first ends the runs whose runner died)."""
    return subprocess.run(
        [KFNB, *args], capture_output=True, text=True, timeout=120, env=env("cli")
    )


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text, text
    assert "traceback :" not in text, text  # torchrun's report of a rank that died


def leaked(mark: str, timeout: float = 30) -> list[int]:
    """The marked processes still alive once they had ``timeout`` seconds to end."""
    deadline = time.monotonic() + timeout
    while processes_of(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    return processes_of(mark)


def report(fault: str, runs: list[Run], lost: int, left: list[int]) -> None:
    terminal = sum(r.status in TERMINAL_RUN for r in runs)
    print(
        f"\nfault={fault} runs={len(runs)} terminal={terminal} lost={lost} leaked={len(left)}",
        flush=True,
    )


# -- a step's kernel ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("how", "cell", "died"),
    [
        ("kill -9", "import os, time", "the kernel died (SIGKILL)"),
        ("os._exit(3)", "import os", "the kernel died (exit code 3)"),
    ],
)
def test_a_dead_kernel_is_one_line_naming_the_cell_and_how_it_ended(
    tmp_path: Path, store: Store, how: str, cell: str, died: str
) -> None:
    pid_file = tmp_path / "kernel.pid"
    body = (
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n{FOREVER}"
        if how == "kill -9"
        else "import os\nos._exit(3)"
    )
    path = notebook(
        tmp_path / "project" / "dies.ipynb",
        ("step:prep", "x = 1"),
        ("step:train", "y = x + 1"),
        (None, "import time\nz = y"),
        (None, body),  # cell 3
        (None, "w = z"),
    )
    mark = uuid.uuid4().hex
    out = tmp_path / "run"
    proc = spawn([KFNB, "run", str(path), "--no-cache"], mark, out, cwd=path.parent)
    if how == "kill -9":
        wait_for(lambda: pid_file.exists() and pid_file.read_text() != "", "the cell to run")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert proc.wait(timeout=120) == 1
    left = leaked(mark)

    (run,) = store.list_runs()
    line = f"step 'train' failed at cell 3 ({cell!r}): {died}"
    shown = cli("show", run.id)
    report(f"kernel {how}", [run], lost=int(run.step("prep").status != "SUCCEEDED"), left=left)
    assert run.status == "FAILED" and run.error == line, run.error
    error = run.step("train").error or {}
    assert error["message"] == line and error["cell"] == 3, error
    assert "traceback" not in error and "DeadKernelError" in error["detail"], error
    assert f"✗ {line}" in screen(out)
    no_traceback(screen(out))
    assert shown.returncode == 0 and line in shown.stdout, shown.stdout + shown.stderr
    no_traceback(shown.stdout + shown.stderr)
    prep = run.step("prep")  # recorded before the kernel died: kept
    assert prep.status == "SUCCEEDED" and prep.output_notebook
    assert Path(prep.output_notebook).exists()
    assert left == []


# -- the runner of `kfnb run` ---------------------------------------------------------------------
def test_a_killed_runner_fails_its_run_as_of_when_it_died(tmp_path: Path, store: Store) -> None:
    started = tmp_path / "started"
    path = notebook(
        tmp_path / "project" / "runner.ipynb",
        ("step:prep", "x = 1"),
        ("step:slow", f"import time\nopen({str(started)!r}, 'w').close()\n{FOREVER}"),
    )
    mark = uuid.uuid4().hex
    out = tmp_path / "run"
    proc = spawn([KFNB, "run", str(path), "--no-cache"], mark, out, cwd=path.parent)
    wait_for(started.exists, "the slow step to run")
    (before,) = store.list_runs()
    events = store.events(before.id)
    time.sleep(1.0)  # the run goes on a while: its end is when it died, not when it started
    proc.send_signal(signal.SIGKILL)
    killed = time.time()
    proc.wait(timeout=30)
    left = leaked(mark)
    time.sleep(max(0.0, killed + 3 - time.time()))  # noticed 3 s after it died
    listed = cli("runs", "--json")
    noticed = time.time()

    assert listed.returncode == 0, listed.stderr
    no_traceback(listed.stdout + listed.stderr)
    run = store.get_run(before.id)
    kept = store.events(run.id)[: len(events)]
    lost = int(kept != events) + int(run.step("prep").status != "SUCCEEDED")
    report("runner kill -9 (kfnb run)", [run], lost=lost, left=left)
    assert run.status == "FAILED", run.to_dict()
    assert f"runner process {proc.pid}" in (run.error or "")
    assert f"runner process {proc.pid}" in str((run.step("slow").error or {}).get("message"))
    assert lost == 0
    assert run.finished_at is not None
    assert killed - 1.0 <= run.finished_at <= killed + 0.5, (killed, run.finished_at, noticed)
    assert run.step("slow").finished_at == run.finished_at
    assert left == []


# -- one rank of a training job -------------------------------------------------------------------
def test_a_killed_rank_fails_the_job_naming_the_rank_and_the_signal(
    tmp_path: Path, store: Store
) -> None:
    pytest.importorskip("torch")
    script = tmp_path / "fit.py"
    script.write_text(
        "import os, time\nimport torch.distributed as dist\n"
        "dist.init_process_group('gloo')\nrank = dist.get_rank()\n"
        f"open(os.path.join({str(tmp_path)!r}, f'rank-{{rank}}.pid'), 'w')"
        ".write(str(os.getpid()))\n"
        "print(f'rank {rank} started', flush=True)\n"
        f"{FOREVER}\n"
    )
    mark = uuid.uuid4().hex
    out = tmp_path / "train"
    proc = spawn([KFNB, "train", str(script), "--procs", "2"], mark, out, cwd=tmp_path)
    pids = [tmp_path / f"rank-{n}.pid" for n in range(2)]
    wait_for(lambda: all(p.exists() and p.read_text() for p in pids), "both ranks", 120)
    os.kill(int(pids[1].read_text()), signal.SIGKILL)
    assert proc.wait(timeout=120) == 1, screen(out)
    left = leaked(mark)

    (job,) = store.list_runs(kind="train")
    steps = {s.name: s for s in job.steps}
    rank0 = (steps["rank-0"].error or {}).get("message", "")
    log0 = Path(job.artifacts_dir, "logs", "rank-0.log").read_text()
    report("rank kill -9 (kfnb train)", [job], lost=int("rank 0 started" not in log0), left=left)
    assert job.status == "FAILED" and job.error == "rank 1 died (SIGKILL)", job.error
    assert (steps["rank-1"].error or {}).get("message") == "rank 1 died (SIGKILL)"
    assert "Root Cause" in (steps["rank-1"].error or {}).get("detail", "")  # torchrun's report
    assert steps["rank-0"].status == "FAILED"
    assert rank0 == "stopped: rank 1 died (SIGKILL)" or rank0.endswith(
        "(after rank 1 died (SIGKILL))"
    ), rank0
    assert "✗ rank 1 died (SIGKILL)" in screen(out)
    no_traceback(screen(out))
    assert "rank 0 started" in log0
    assert left == []


# -- the runner of `kfnb tune` --------------------------------------------------------------------
def test_a_killed_tuning_runner_fails_the_study_and_its_running_trials(
    tmp_path: Path, store: Store
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    path = notebook(
        tmp_path / "project" / "tune.ipynb",
        ("pipeline-parameters", "x = 1"),
        (
            "step:fit",
            "import os, time\nif x == 3:\n"
            f"    open(os.path.join({str(marks)!r}, f'long-{{os.getpid()}}'), 'w').close()\n"
            "    while True:\n        time.sleep(0.05)\n"
            "score = -(x - 2) ** 2",
        ),
        ("pipeline-metrics", "print(score)"),
    )
    space = path.with_name("space.yaml")
    space.write_text("x: {int: [0, 3]}\n")
    mark = uuid.uuid4().hex
    out = tmp_path / "tune"
    proc = spawn(
        [KFNB, "tune", str(path), "--space", str(space), "--objective", "score", "--maximize",
         "--algorithm", "grid", "--trials", "4", "--parallel", "2"],
        mark, out, cwd=path.parent,
    )  # fmt: skip

    def study() -> Run | None:
        found = store.list_runs(kind="tune")
        return found[0] if found else None

    def ready() -> bool:
        s = study()
        done = s is not None and any(c.status == "SUCCEEDED" for c in store.children(s.id))
        return done and any(marks.iterdir())

    wait_for(ready, "a finished trial and the long one running", 120)
    sid = study().id  # type: ignore[union-attr]
    finished = {c.id: c.metrics for c in store.children(sid) if c.status == "SUCCEEDED"}
    proc.send_signal(signal.SIGKILL)
    killed = time.time()
    proc.wait(timeout=30)
    left = leaked(mark)
    time.sleep(max(0.0, killed + 2.5 - time.time()))  # noticed a while after it died
    listed = cli("runs", "--json")  # recovers

    assert listed.returncode == 0, listed.stderr
    no_traceback(listed.stdout + listed.stderr)
    no_traceback(screen(out))
    lost_study = store.get_run(sid)
    trials = store.children(sid)
    lost = sum(store.get_run(t).metrics != m or store.get_run(t).status != "SUCCEEDED"
               for t, m in finished.items())  # fmt: skip
    report("tuning runner kill -9 (kfnb tune)", [lost_study, *trials], lost=lost, left=left)
    assert lost_study.status == "FAILED", lost_study.to_dict()
    assert f"runner process {proc.pid}" in (lost_study.error or "")
    assert lost_study.finished_at is not None and lost_study.finished_at <= killed + 0.5
    assert all(t.status in TERMINAL_RUN for t in trials), [(t.id, t.status) for t in trials]
    cut = [t for t in trials if t.status == "FAILED"]
    assert cut and all(f"runner process {proc.pid}" in (t.error or "") for t in cut)
    assert lost == 0 and finished
    assert left == []


# -- the Jupyter server running a run -------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path, str]]:
    """A real Jupyter server with kfnb (and nothing else), as a marked process of its own:
    ``(process, base URL, root folder, mark)``."""
    root = tmp_path / "root"
    root.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "jupyter_server_config.json"
    extensions = ("jupyterlab", "jupyter_lsp", "jupyter_server_terminals", "notebook_shim")
    config.write_text(
        json.dumps(
            {
                "ServerApp": {
                    "jpserver_extensions": {"kfnb": True, **dict.fromkeys(extensions, False)},
                    "open_browser": False,
                    "token": "t0ken",
                    "allow_root": True,
                    "ip": "127.0.0.1",
                    "port": port,
                    "port_retries": 0,
                    "root_dir": str(root),
                },
                "KfnbServerSettings": {"pool_size": 0},
            }
        )
    )
    mark = uuid.uuid4().hex
    proc = spawn([JUPYTER, "server", f"--config={config}"], mark, tmp_path / "server")
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, screen(tmp_path / "server")
        try:
            call(base, "GET", "/api/status")
            return True
        except OSError:
            return False

    try:
        wait_for(up, "the Jupyter server to start", 90)
        yield proc, base, root, mark
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def call(base: str, method: str, route: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        base + route,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "token t0ken", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read() or b"null")


def test_a_killed_jupyter_server_fails_its_run_and_leaves_no_kernel(
    tmp_path: Path, store: Store, server: tuple[subprocess.Popen[bytes], str, Path, str]
) -> None:
    proc, base, root, mark = server
    started = tmp_path / "started"
    notebook(
        root / "served.ipynb",
        ("step:prep", "x = 1"),
        ("step:slow", f"import time\nopen({str(started)!r}, 'w').close()\n{FOREVER}"),
    )
    run_id = call(base, "POST", "/kfnb/api/runs", {"path": "served.ipynb"})["id"]
    wait_for(started.exists, "the slow step to run", 60)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    killed = time.time()
    proc.wait(timeout=30)
    left = leaked(mark)
    time.sleep(max(0.0, killed + 2.5 - time.time()))  # noticed a while after it died
    shown = cli("show", run_id)  # recovers

    run = store.get_run(run_id)
    report("jupyter server kill -9", [run], lost=int(run.step("prep").status != "SUCCEEDED"),
           left=left)  # fmt: skip
    assert run.status == "FAILED", run.to_dict()
    assert f"runner process {proc.pid}" in (run.error or "")
    assert run.step("slow").status == "FAILED"
    assert run.step("prep").status == "SUCCEEDED"
    assert run.finished_at is not None and killed - 1.5 <= run.finished_at <= killed + 0.5
    assert shown.returncode == 0 and run.error in shown.stdout
    no_traceback(shown.stdout + shown.stderr)
    assert left == []


# -- cancels that kill kernels --------------------------------------------------------------------
def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _step_threads_end(timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(t.name.startswith("kfnb-step-") for t in threading.enumerate()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_cancels_kill_kernels_quietly_and_give_back_every_file_descriptor(
    tmp_path: Path, store: Store, capfd: pytest.CaptureFixture[str]
) -> None:
    """Cancelled while the kernel is being set up, just after, and mid-cell: no ZMQError or
    traceback from jupyter_client (a second shutdown of a killed kernel's manager logged one),
    the steps' threads end at once (one waited 30 s for a killed kernel's set-up reply), and
    the process's file descriptors come back to where they were."""
    from kfnb.kernels import PoolConfig, shared_pool

    running = tmp_path / "running"
    running.mkdir()
    path = notebook(
        tmp_path / "project" / "cancel.ipynb",
        ("step:a", "x = 1"),
        (
            "step:b",
            f"import os, time\nopen(os.path.join({str(running)!r}, str(os.getpid())), 'w')"
            f".close()\n{FOREVER}",
        ),
    )
    # as an application that shows its logs does (a Jupyter server): library errors show
    shown = logging.StreamHandler(sys.stderr)
    shown.setLevel(logging.WARNING)
    logging.getLogger().addHandler(shown)
    pool = shared_pool(PoolConfig(size=0))
    try:
        quick = notebook(tmp_path / "project" / "quick.ipynb", ("step:a", "x = 1"))
        assert kfnb.run(quick, store=store, cache=False, pool_size=0).status == "SUCCEEDED"
        assert _step_threads_end(10) and pool.wait_idle(timeout=30)
        gc.collect()
        baseline = _fds()

        runs = []
        for delay in (0.0, 0.05, 0.3, None):  # None: once the cell runs
            batch = [
                kfnb.run(path, store=store, cache=False, wait=False, pool_size=0) for _ in range(3)
            ]
            for r in batch:
                wait_for(lambda r=r: r.record.step("b").status == "RUNNING", "step b to start")
            if delay is None:
                wait_for(lambda: len(list(running.iterdir())) >= 3, "the cells to run")
            else:
                time.sleep(delay)
            started = time.monotonic()
            for r in batch:
                r.cancel()
            for r in batch:
                r.wait(timeout=60)
            ended = _step_threads_end(10)
            assert ended, f"the steps' threads still run {time.monotonic() - started:.0f} s on"
            runs += batch
        assert pool.wait_idle(timeout=30)
        wait_for(lambda: pool.stats()["starting"] == 0, "the pool to settle", 30)
        gc.collect()
        after = _fds()
    finally:
        logging.getLogger().removeHandler(shown)
    err = capfd.readouterr().err
    records = [r.record for r in runs]
    report("cancel x12 (kernels killed)", records, lost=0, left=[])
    print(f"fds: baseline {baseline}, after {after}", flush=True)
    assert all(r.status == "CANCELED" for r in records), [r.status for r in records]
    assert "ZMQError" not in err and "Traceback" not in err, err
    assert "Kernel died" not in err, err
    assert after - baseline <= 3, f"{after - baseline} file descriptors more after 12 cancels"
