"""Launch overhead of a trivial 2-rank training job, side by side in one run:

    python benchmarks/train_bench.py [--repeat 5] [--peers] [--json FILE]

- ``kfnb``: ``kfnb.train(job, ..., procs_per_node=2)`` called in this (already running) Python
  process, as from a notebook kernel: packaging, the run record, the supervisor, torchrun;
- ``torchrun``: ``python -m torch.distributed.run --standalone --nproc-per-node 2 job.py`` started
  as a subprocess: the floor kfnb builds on;
- ``kubeflow SDK`` (``--peers``): the Kubeflow SDK's local process backend,
  ``TrainerClient(LocalProcessBackendConfig()).train(trainer=CustomTrainer(func=job))``, driven
  from its own virtualenv (``~/.cache/kfnb-bench/kubeflow-venv``, kubeflow 0.5.0 and its
  dependencies; created on the first ``--peers`` run). Each of its jobs makes a fresh venv and
  pip-installs torch into it (``packages_to_install=["torch==2.13.0"]``: without it the job
  finds no torchrun and fails; 2.13.0 is the CPU build this machine keeps on disk, the cheapest
  torch there is here). It always starts one process (torchrun without ``--nproc-per-node``),
  so only rank 0 is timed for it.

The job writes ``time.time()`` as its first line in every rank, then joins a gloo process group
and leaves. "launch" is from the call (or Popen) to the last rank's first line; "total" to the
end of the job as its launcher sees it. Prints medians (min-max) and ratios to torchrun.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SDK_VENV = Path.home() / ".cache" / "kfnb-bench" / "kubeflow-venv"
SDK_VERSION = "0.5.0"

JOB = """
def job(stamp_dir: str = "") -> None:
    import os
    import time

    rank = os.environ.get("RANK", "0")
    with open(os.path.join(stamp_dir, f"rank-{rank}"), "w") as f:
        f.write(repr(time.time()))
    import torch.distributed as dist

    dist.init_process_group("gloo")
    dist.barrier()
    dist.destroy_process_group()
"""


def _stamps(folder: Path, ranks: int, timeout: float = 600) -> list[float]:
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(folder.glob("rank-*"))
        texts = [f.read_text() for f in files]
        if len(files) >= ranks and all(texts):
            return [float(t) for t in texts]
        if time.monotonic() > deadline:
            raise RuntimeError(f"no stamps from {ranks} ranks in {folder} after {timeout}s")
        time.sleep(0.005)


def time_kfnb(work: Path) -> dict[str, float]:
    import kfnb

    module = work / "kfnb_job.py"
    module.write_text(JOB)
    sys.path.insert(0, str(work))
    try:
        import importlib

        job = importlib.import_module("kfnb_job").job
        stamps = work / f"stamps-{time.monotonic_ns()}"
        stamps.mkdir()
        t0 = time.time()
        handle = kfnb.train(job, {"stamp_dir": str(stamps)}, procs_per_node=2)
        launch = max(_stamps(stamps, 2)) - t0
        status = handle.wait(600)
        total = time.time() - t0
        if status != "SUCCEEDED":
            raise RuntimeError(f"kfnb job {handle.id} ended {status}: {handle.error}")
    finally:
        sys.path.remove(str(work))
    return {"launch": launch, "total": total}


def time_torchrun(work: Path) -> dict[str, float]:
    script = work / "torchrun_job.py"
    script.write_text(JOB + "\nif __name__ == '__main__':\n    import sys\n    job(sys.argv[1])\n")
    stamps = work / f"stamps-{time.monotonic_ns()}"
    stamps.mkdir()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        str(script), str(stamps),
    ]  # fmt: skip
    t0 = time.time()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    launch = max(_stamps(stamps, 2)) - t0
    _, err = proc.communicate(timeout=600)
    total = time.time() - t0
    if proc.returncode:
        raise RuntimeError(f"torchrun failed: {err.decode()[-2000:]}")
    return {"launch": launch, "total": total}


SDK_DRIVER = """
import json, sys, time
from kubeflow.trainer import CustomTrainer, LocalProcessBackendConfig, TrainerClient

def job(parameters):
    # the SDK calls the function with the args dict as one positional argument
    import os, time
    rank = os.environ.get("RANK", "0")
    with open(os.path.join(parameters["stamp_dir"], f"rank-{rank}"), "w") as f:
        f.write(repr(time.time()))
    import torch.distributed as dist
    dist.init_process_group("gloo")
    dist.barrier()
    dist.destroy_process_group()

stamp_dir = sys.argv[1]
client = TrainerClient(backend_config=LocalProcessBackendConfig())
t0 = time.time()
name = client.train(runtime=client.get_runtime("torch-distributed"),
                    trainer=CustomTrainer(func=job, func_args={"stamp_dir": stamp_dir},
                                          # without it the job's venv has no torch(run);
                                          # the CPU build this machine keeps on disk
                                          packages_to_install=["torch==2.13.0"]))
done = client.wait_for_job_status(name, status={"Complete", "Failed"}, timeout=900,
                                  polling_interval=1)
end = time.time()
if done.status != "Complete":
    print("".join(client.get_job_logs(name)), file=sys.stderr)
print(json.dumps({"t0": t0, "end": end, "status": done.status}))
"""


def ensure_sdk_venv(venv: Path = SDK_VENV) -> Path:
    python = venv / "bin" / "python"
    marker = venv / "kfnb-bench-ready"
    if marker.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"kubeflow=={SDK_VERSION}"], check=True
    )
    marker.write_text(SDK_VERSION)
    return python


def time_sdk(work: Path, python: Path) -> dict[str, float]:
    driver = work / "sdk_driver.py"
    driver.write_text(textwrap.dedent(SDK_DRIVER))
    stamps = work / f"stamps-{time.monotonic_ns()}"
    stamps.mkdir()
    done = subprocess.run(
        [str(python), str(driver), str(stamps)],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=work,
    )
    if done.returncode:
        raise RuntimeError(f"the Kubeflow SDK driver failed: {done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != "Complete":
        raise RuntimeError(
            f"the Kubeflow SDK job ended {result['status']}; its log:\n{done.stderr[-3000:]}"
        )
    first = _stamps(stamps, 1, timeout=5)
    return {"launch": max(first) - result["t0"], "total": result["end"] - result["t0"]}


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--peers", action="store_true", help="also the Kubeflow SDK (slow)")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args(argv)
    runners: dict[str, Callable[[Path], dict[str, float]]] = {
        "torchrun": time_torchrun,
        "kfnb": time_kfnb,
    }
    if args.peers:
        python = ensure_sdk_venv()
        runners["kubeflow SDK (1 rank)"] = lambda work: time_sdk(work, python)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in runners}
    with tempfile.TemporaryDirectory(prefix="kfnb-train-bench-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("KFNB_HOME", str(work / "kfnb-home"))
        time_torchrun(work)  # warm-up: the page cache holds torch for everyone
        for i in range(args.repeat):
            for name, run in runners.items():  # interleaved, so drift hits all alike
                results[name].append(run(work))
                print(f"  {i + 1}/{args.repeat} {name}: {results[name][-1]}", flush=True)
    base = statistics.median(r["launch"] for r in results["torchrun"])
    print(
        f"\n2-rank gloo job, {args.repeat} runs each, seconds: median (min-max); "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    print("| launcher | launch (call -> last rank's first line) | total | launch - torchrun |")
    print("|---|---|---|---|")
    for name, rows in results.items():
        launch = [r["launch"] for r in rows]
        total = [r["total"] for r in rows]
        delta = statistics.median(launch) - base
        print(f"| {name} | {summary(launch)} | {summary(total)} | {delta:+.2f} |")
    if "kubeflow SDK (1 rank)" in results:
        sdk = statistics.median(r["launch"] for r in results["kubeflow SDK (1 rank)"])
        mine = statistics.median(r["launch"] for r in results["kfnb"])
        print(f"\nkfnb launches {sdk / mine:.1f}x faster than the Kubeflow SDK's local backend")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
