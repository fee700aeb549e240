"""Local training jobs (`kfnb.train`) with real torchrun and gloo ranks: from a notebook function
in a real kernel, a failing rank, cancel, a launcher that dies, and the machine's GPU lease."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook
from procs import processes_of, wait_for

from kfnb.tracking import Store

pytest.importorskip("torch")

TRAIN = """\
def train(lr: float = 0.1, epochs: int = 3):
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    total = torch.tensor([float(X.sum()) * config["scale"] * lr])
    dist.all_reduce(total)
    for epoch in range(epochs):
        kfnb.log_metric("loss", total.item() / (epoch + 1), step=epoch)
    print(f"rank {rank} of {dist.get_world_size()}: total {total.item()}")
    dist.destroy_process_group()
"""


def test_a_two_rank_job_trains_a_notebook_function_that_reads_notebook_globals(
    tmp_path: Path, store: Store
) -> None:
    nb = new_notebook(
        cells=[
            new_code_cell("import kfnb\nimport numpy as np\n\nX = np.arange(8.0)"),
            new_code_cell("config = {'scale': 3}"),
            new_code_cell(TRAIN),
            new_code_cell(
                "job = kfnb.train(train, {'lr': 0.5}, procs_per_node=2, wait=True)\n"
                "print(job.status, job.error)"
            ),
        ]
    )
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert printed.strip() == "SUCCEEDED None", nb.cells[-1].outputs

    (run,) = store.list_runs(kind="train")
    assert run.status == "SUCCEEDED" and run.backend == "local"
    assert run.params == {"lr": 0.5, "epochs": 3}  # typed: the float and the default int
    assert [(s.name, s.status) for s in run.steps] == [
        ("rank-0", "SUCCEEDED"),
        ("rank-1", "SUCCEEDED"),
    ]
    # sum(0..7) = 28, * scale 3 * lr 0.5 = 42 on each rank, all-reduced over 2 ranks: 84;
    # rank 0 alone records
    metrics = store.metrics(run.id)
    assert [(m.name, m.value, m.step, m.source) for m in metrics] == [
        ("loss", 84.0, 0, "rank-0"),
        ("loss", 42.0, 1, "rank-0"),
        ("loss", 28.0, 2, "rank-0"),
    ]
    job = Path(run.artifacts_dir)
    assert (job / "logs" / "rank-1.log").read_text() == "rank 1 of 2: total 84.0\n"
    merged = (job / "logs" / "all.log").read_text().splitlines()
    assert sorted(merged) == [
        "[rank 0] rank 0 of 2: total 84.0",
        "[rank 1] rank 1 of 2: total 84.0",
    ]
    # the program is a real module: the notebook's imports, its values saved beside it
    program = (job / "program" / "program.py").read_text()
    assert "import kfnb" in program and "def train(" in program
    assert "_kfnb_load_values(__file__, ['X', 'config'])" in program
    assert {p.stem for p in (job / "program" / "values").iterdir()} >= {"X", "config"}


def _module(tmp_path: Path, source: str) -> str:
    """A module file ``jobs_<unique>.py`` holding ``source``; its name."""
    name = f"jobs_{uuid.uuid4().hex[:12]}"  # unique: tests that import it share sys.modules
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    return name


def _launch(tmp_path: Path, module: str, call: str, env: dict[str, str] | None = None) -> str:
    """In a separate Python process (standing for a kernel): import ``module``, evaluate
    ``call`` (a kfnb.train call), print the job's id, and stay alive until killed."""
    code = (
        f"import sys, time, kfnb; sys.path.insert(0, {str(tmp_path)!r})\n"
        f"from {module} import *\n"
        f"job = {call}\n"
        "print(job.id, flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)  # the "kernel" dies at once: the job must not
    _, err = proc.communicate(timeout=30)
    assert line, err
    return line


def test_a_failing_rank_is_the_jobs_error_with_its_own_traceback(
    tmp_path: Path, store: Store
) -> None:
    module = _module(
        tmp_path,
        """
        def shard(rank):
            if rank == 1:
                raise ValueError(f"bad shard {rank}")

        def train():
            import torch.distributed as dist

            dist.init_process_group("gloo")
            shard(dist.get_rank())
            dist.barrier()
        """,
    )
    run_id = _launch(tmp_path, module, "kfnb.train(train, procs_per_node=2)")
    from kfnb.training import attach

    job = attach(run_id)
    assert job.wait(120) == "FAILED"
    assert job.error == "rank 1 failed: ValueError: bad shard 1"
    steps = {s.name: s for s in job.record.steps}
    assert steps["rank-1"].status == "FAILED"
    assert steps["rank-1"].error is not None
    trace = steps["rank-1"].error["traceback"]
    assert 'raise ValueError(f"bad shard {rank}")' in trace and "in shard" in trace
    # rank 0 was stopped, or failed of rank 1's end itself (its peer closed the connection)
    assert steps["rank-0"].status == "FAILED"
    assert steps["rank-0"].error is not None
    assert (
        steps["rank-0"].error["message"].endswith("rank 1 failed)")
        or steps["rank-0"].error["message"] == "stopped: rank 1 failed"
    ), steps["rank-0"].error
    assert "ValueError: bad shard 1" in job.logs(1)


def test_cancel_stops_the_whole_tree(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _module(
        tmp_path,
        """
        def train(seconds: float = 300):
            import time
            print("started", flush=True)
            time.sleep(seconds)
        """,
    )
    mark = f"cancel-{os.getpid()}"
    run_id = _launch(
        tmp_path, module, "kfnb.train(train, procs_per_node=2)", {"KFNB_TEST_MARK": mark}
    )
    from kfnb.training import attach

    job = attach(run_id)
    wait_for(lambda: "started" in job.logs(0) and "started" in job.logs(1), "both ranks")
    # supervisor, torchrun's agent, two ranks
    assert len(processes_of(mark)) >= 4, processes_of(mark)
    job.cancel()
    assert job.wait(60) == "CANCELED"
    wait_for(lambda: not processes_of(mark), "every process of the job to end", timeout=30)
    assert {s.status for s in job.record.steps} == {"CANCELED"}


def test_a_job_outlives_its_launcher_and_is_reattached(tmp_path: Path, store: Store) -> None:
    module = _module(
        tmp_path,
        """
        import kfnb

        def train(steps: int = 3):
            import time
            for step in range(steps):
                time.sleep(1)
                kfnb.log_metric("step", step, step=step)
        """,
    )
    run_id = _launch(tmp_path, module, "kfnb.train(train)")  # one process: plain python
    assert store.recover() == []  # its launcher is dead, its supervisor is not
    from kfnb.training import attach

    job = attach(run_id[:15])
    assert job.wait(60) == "SUCCEEDED", job.error
    assert job.metrics == {"step": [0.0, 1.0, 2.0]}


def test_jobs_and_pipeline_steps_never_hold_the_same_gpu(
    tmp_path: Path, store: Store, write_notebook: Callable[..., Path]
) -> None:
    """One fake GPU (KFNB_GPUS=0) for two training jobs and a pipeline's GPU step."""
    record = tmp_path / "gpu-use.jsonl"
    use = (
        "import json, os, time\n"
        "start = time.time()\n"
        "time.sleep(2)\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'gpus': os.environ['CUDA_VISIBLE_DEVICES'], 'start': start,"
        " 'end': time.time()}) + '\\n')\n"
    )
    module = _module(tmp_path, "def train():\n" + textwrap.indent(use, "    "))
    env = {"KFNB_GPUS": "0"}
    jobs = [_launch(tmp_path, module, "kfnb.train(train, gpus_per_node=1)", env) for _ in range(2)]
    notebook = write_notebook("gpu_step", (["step:fit", "limit:nvidia.com/gpu:1"], use))
    kfnb_cli = str(Path(sys.executable).with_name("kfnb"))
    pipeline = subprocess.run(
        [kfnb_cli, "run", str(notebook), "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert pipeline.returncode == 0, pipeline.stderr
    from kfnb.training import attach

    for run_id in jobs:
        assert attach(run_id).wait(120) == "SUCCEEDED"
    uses = sorted(
        (json.loads(line) for line in record.read_text().splitlines()), key=lambda u: u["start"]
    )
    assert [u["gpus"] for u in uses] == ["0", "0", "0"]
    for before, after in itertools.pairwise(uses):
        assert before["end"] <= after["start"], uses
    waits = [
        e.data["message"]
        for r in store.list_runs()
        for e in store.events(r.id)
        if e.kind == "warning"
    ]
    assert waits and all(w.startswith("waiting for GPUs: GPU 0 is held by ") for w in waits)


def test_a_job_asking_for_more_gpus_than_the_machine_has_fails_at_submit(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kfnb
    from kfnb.backends import BackendError

    monkeypatch.setenv("KFNB_GPUS", "0,1")
    module = _module(tmp_path, "def train():\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        fn = __import__(module).train
    finally:
        sys.path.remove(str(tmp_path))
    with pytest.raises(BackendError) as err:
        kfnb.train(fn, gpus_per_node=4)
    assert str(err.value) == (
        "the job asks for 4 GPUs, but this machine has 2 (GPU ids: 0, 1). Fix: ask for fewer "
        "GPUs, set KFNB_GPUS to the ids to use, or run on a cluster (backend='trainjob')"
    )
    assert store.list_runs() == []  # nothing recorded, nothing started


def test_the_train_cell_magic_trains_the_cell_with_the_notebook_values(
    tmp_path: Path, store: Store
) -> None:
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext kfnb\nimport kfnb\nweights = [0.5, 1.5]"),
            new_code_cell(
                "%%train --procs 2 --wait\n"
                "import torch.distributed as dist\n"
                "dist.init_process_group('gloo')\n"
                "rank = dist.get_rank()\n"
                "print(f'rank {rank} weight {weights[rank]}')\n"
                "kfnb.log_metric('weight', weights[rank])\n"
                "dist.destroy_process_group()\n"
            ),
        ]
    )
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    printed = "".join(o.get("text", "") for o in nb.cells[1].outputs).splitlines()
    (run,) = store.list_runs(kind="train")
    assert printed[0] == f"training job {run.id}: 2 process(es), 0 GPU(s)"
    assert sorted(printed[1:3]) == ["[rank 0] rank 0 weight 0.5", "[rank 1] rank 1 weight 1.5"]
    assert printed[3] == "SUCCEEDED"
    assert [m.value for m in store.metrics(run.id)] == [0.5]  # rank 0's
    program = Path(run.artifacts_dir) / "program"
    assert (program / "cell.py").read_text().startswith("import torch.distributed as dist")


def test_kfnb_train_runs_a_script_with_its_arguments(tmp_path: Path, store: Store) -> None:
    script = tmp_path / "fit.py"
    script.write_text(
        "import argparse\nimport torch.distributed as dist\n"
        "p = argparse.ArgumentParser()\np.add_argument('--lr', type=float)\n"
        "lr = p.parse_args().lr\n"
        "dist.init_process_group('gloo')\n"
        "print(f'rank {dist.get_rank()} lr {lr}')\n"
    )
    kfnb_cli = str(Path(sys.executable).with_name("kfnb"))
    done = subprocess.run(
        [kfnb_cli, "train", str(script), "--procs", "2", "--", "--lr", "0.25"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    (run,) = store.list_runs(kind="train")
    assert lines[0] == f"started training job {run.id} (2 process(es), 0 GPU(s))"
    assert sorted(lines[1:3]) == ["[rank 0] rank 0 lr 0.25", "[rank 1] rank 1 lr 0.25"]
    assert lines[3].startswith("fit: succeeded in ") and lines[3].endswith(f"(run {run.id})")


def test_the_ddp_example_learns_the_digits_on_two_ranks(tmp_path: Path, store: Store) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "train_ddp.ipynb"
    nb = nbformat.read(example, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs).splitlines()
    assert printed[0].strip() == "SUCCEEDED", printed
    (run,) = store.list_runs(kind="train")
    accuracy = [m.value for m in store.metrics(run.id, "accuracy")]
    assert len(accuracy) == 40 and accuracy[-1] > 0.9, accuracy
    assert printed[1] == f"test accuracy after 40 epochs: {accuracy[-1]:.3f}"
    assert sum(line.startswith("[rank ") for line in printed) == 2


def test_the_job_widget_follows_ranks_metrics_and_logs_and_stops_the_job(
    tmp_path: Path, store: Store
) -> None:
    import time

    module = _module(
        tmp_path,
        """
        import kfnb

        def train(epochs: int = 400):
            import time
            for epoch in range(epochs):
                kfnb.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
                print("epoch", epoch, flush=True)
                time.sleep(0.1)
        """,
    )
    from kfnb.training import attach

    job = attach(_launch(tmp_path, module, "kfnb.train(train, procs_per_node=2)"))
    widget = job.widget(poll=0.1)
    wait_for(
        lambda: (
            len(widget.state()["series"].get("loss", [])) >= 3
            and "epoch 2" in widget.state()["log"]
        ),
        "the widget to plot the loss and show a rank's log",
    )
    state = widget.state()
    assert state["status"] == "RUNNING"
    assert state["steps"] == {"rank-0": "RUNNING", "rank-1": "RUNNING"}
    assert state["log_step"] in ("rank-0", "rank-1") and not state["cancel_disabled"]
    widget.cancel_button.click()  # Stop
    assert job.wait(60) == "CANCELED"
    deadline = time.monotonic() + 10
    while widget.state()["status"] != "CANCELED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert widget.state()["status"] == "CANCELED"
    html = widget.bundle(widget_view=False)["text/html"]
    assert 'data-step="rank-1"' in html and 'data-title="loss"' in html


def test_the_train_launcher_builds_its_form_from_the_signature_and_trains(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfnb.widgets import TrainLauncher

    module = _module(
        tmp_path,
        """
        import kfnb

        def fit(seed: int, lr: float = 0.05, epochs: int = 2, tags: list | None = None):
            kfnb.log_metric("score", seed * lr * epochs)
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fit = __import__(module).fit
    launcher = TrainLauncher(fit)
    kinds = {k: (type(w).__name__, w.value) for k, w in launcher.fields.items()}
    assert kinds == {
        "seed": ("Text", ""),  # required: typed in
        "lr": ("FloatText", 0.05),
        "epochs": ("IntText", 2),
        "tags": ("Text", "null"),
    }
    assert launcher.nodes.disabled and launcher.yaml_button.disabled  # local: one machine
    assert launcher.start() is None  # seed missing: said in the form, nothing started
    assert "fit() needs a value for 'seed'" in launcher.error.value
    assert store.list_runs() == []
    launcher.fields["seed"].value = "3"
    launcher.fields["epochs"].value = 4
    launcher.procs.value = 2
    job = launcher.start()
    assert job is not None and job.wait(120) == "SUCCEEDED", job.error if job else None
    assert job.record.params == {"seed": 3, "lr": 0.05, "epochs": 4, "tags": None}
    assert job.metrics == {"score": [0.6000000000000001]}
    assert [s.name for s in job.record.steps] == ["rank-0", "rank-1"]

    launcher.backend.value = "trainjob"
    assert not launcher.yaml_button.disabled
    assert launcher.manifest() is None and "needs an image" in launcher.error.value
    launcher.image.value = "registry.example/ml:1"
    launcher.nodes.value = 2
    text = launcher.manifest()
    assert text is not None and "kind: TrainJob" in text and "numNodes: 2" in text
    assert len(store.list_runs()) == 1  # Show YAML sends and records nothing


def test_kfnb_train_runs_a_pipeline_step_on_every_rank_after_its_upstream(
    tmp_path: Path, store: Store, write_notebook: Callable[..., Path]
) -> None:
    notebook = write_notebook(
        "steps",
        ("imports", "import numpy as np\nimport kfnb"),
        ("pipeline-parameters", "lr = 0.1\nepochs = 2"),
        ("step:load", "X = np.arange(8.0)\nprint('loaded', len(X))"),
        (
            "step:train",
            "import torch.distributed as dist\n"
            "dist.init_process_group('gloo')\n"
            "for epoch in range(epochs):\n"
            "    kfnb.log_metric('loss', float(X.sum()) * lr / (epoch + 1), step=epoch)\n"
            "print(f'rank {dist.get_rank()} trained on {len(X)} rows')\n"
            "dist.destroy_process_group()",
        ),
        ("step:report", "print('never run by kfnb train')"),
    )
    kfnb_cli = str(Path(sys.executable).with_name("kfnb"))
    argv = [kfnb_cli, "train", str(notebook), "--step", "train", "--procs", "2"]
    argv += ["-p", "lr", "0.5"]
    for attempt in (1, 2):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "[rank 1] rank 1 trained on 8 rows" in done.stdout
        pipelines = store.list_runs(kind="pipeline")
        assert len(pipelines) == attempt
        # the step the trained one needs ran as a pipeline run: the second time from the cache
        assert [(s.name, s.status) for s in pipelines[0].steps] == [
            ("load", "SUCCEEDED" if attempt == 1 else "CACHED")
        ]
    job = store.list_runs(kind="train")[0]
    assert job.name == "train" and job.status == "SUCCEEDED"
    assert job.params == {"lr": 0.5, "epochs": 2}
    assert [m.value for m in store.metrics(job.id)] == [14.0, 7.0]

    failing = subprocess.run(
        [kfnb_cli, "train", str(notebook), "--procs", "2"], capture_output=True, text=True
    )
    assert failing.returncode == 2
    assert "which of its steps should the ranks run?" in failing.stderr


def test_a_job_survives_the_kernel_that_launched_it(tmp_path: Path, store: Store) -> None:
    """A real kernel launches a job and is killed (SIGKILL, as a crash or a forced restart
    does); the job goes on, and this process re-attaches to it."""
    from jupyter_client.manager import KernelManager

    from kfnb.training import attach

    (tmp_path / "slow.py").write_text(
        "import kfnb\n\n"
        "def train(steps: int = 4):\n"
        "    import time\n"
        "    for step in range(steps):\n"
        "        time.sleep(0.5)\n"
        "        kfnb.log_metric('step', step, step=step)\n"
    )
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    try:
        client = km.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        client.execute_interactive(
            "import sys; sys.path.insert(0, '.')\n"
            "import kfnb\nfrom slow import train\n"
            "job = kfnb.train(train)",
            timeout=60,
        )
        (run,) = store.list_runs(kind="train")
        kernel_pid = km.provisioner.process.pid  # type: ignore[union-attr]
        client.stop_channels()
        os.kill(kernel_pid, signal.SIGKILL)
        km.provisioner.process.wait()  # type: ignore[union-attr]
    finally:
        km.cleanup_resources()
    assert store.get_run(run.id).status in ("PENDING", "RUNNING")  # killed mid-job
    assert store.recover() == []  # its supervisor, not the dead kernel, drives it
    job = attach(run.id)
    assert job.wait(60) == "SUCCEEDED", job.error
    assert job.metrics == {"step": [0.0, 1.0, 2.0, 3.0]}
