"""The local training backend: the program runs on this machine under ``torchrun`` (plain
``python`` for one process), driven by a supervisor process of its own
(``kfnb.training.supervise``) that outlives the process that launched it.

``submit`` checks what can be checked at once (GPUs this machine has, torch for several
processes), records a ``train`` run whose steps are the ranks (``rank-0``...: their logs and
states), writes the program into the run's folder and starts the supervisor, returning once it
has taken the run over.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ..backends import BackendError
from ..backends.local.resources import detect_gpus
from ..errors import MissingDependencyError
from ..tracking import Store
from .job import TrainJob
from .program import Program
from .supervise import JOB_FILE

READY_TIMEOUT_S = 60.0


def check_resources(
    procs: int, gpus: int, nodes: int, env: Mapping[str, str], gpu_ids: list[str] | None
) -> list[str]:
    """The GPU ids the job may lease; ``BackendError`` for a job this machine can never run."""
    if nodes != 1:
        raise BackendError(
            f"the local backend runs on this one machine, not on {nodes} nodes",
            fix="use nodes=1, or a cluster backend: backend='trainjob' (or 'pytorchjob')",
        )
    if procs < 1:
        raise BackendError(f"procs_per_node must be at least 1, not {procs}")
    if gpus < 0:
        raise BackendError(f"gpus_per_node cannot be negative ({gpus})")
    ids = list(gpu_ids) if gpu_ids is not None else detect_gpus(env)
    if gpus > len(ids):
        have = ", ".join(ids) or "none"
        raise BackendError(
            f"the job asks for {gpus} GPU{'s' * (gpus != 1)}, but this machine has {len(ids)} "
            f"(GPU ids: {have})",
            fix="ask for fewer GPUs, set KFNB_GPUS to the ids to use, or run on a cluster "
            "(backend='trainjob')",
        )
    if procs > 1 and importlib.util.find_spec("torch") is None:
        raise MissingDependencyError("torch", "torch", f"training with {procs} processes")
    return ids


def submit(
    program: Program,
    store: Store,
    *,
    procs: int = 1,
    gpus: int = 0,
    nodes: int = 1,
    cwd: Path | None = None,
    notebook: str | None = None,
    env: Mapping[str, str] | None = None,
    settings_env: Mapping[str, str] | None = None,
    gpu_ids: list[str] | None = None,
    parent_id: str | None = None,
) -> TrainJob:
    """Start ``program`` on this machine; the job's handle once its supervisor runs."""
    ids = check_resources(procs, gpus, nodes, settings_env or os.environ, gpu_ids)
    store.recover()
    run = store.create_run(
        kind="train",
        parent_id=parent_id,
        name=program.name,
        backend="local",
        notebook=notebook,
        notebook_hash=None,
        params=program.recorded_args(),
        steps=[f"rank-{n}" for n in range(procs)],
        spec=program.spec(procs=procs, gpus=gpus, nodes=1),
    )
    job = Path(run.artifacts_dir)
    program.write(job / "program")
    (job / JOB_FILE).write_text(
        json.dumps(
            {
                "procs": procs,
                "gpus": gpus,
                "gpu_ids": ids,
                "cwd": str(cwd or Path.cwd()),
                "python": sys.executable,
                "env": dict(env or {}),
            }
        )
    )
    _start_supervisor(store, run.id, job)
    return TrainJob(store, run.id)


def _start_supervisor(store: Store, run_id: str, job: Path) -> None:
    env = {**os.environ, "KFNB_HOME": str(store.home)}
    log = open(job / "supervisor.log", "ab")  # noqa: SIM115 - the child keeps it
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kfnb.training.supervise", run_id],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # a kernel restart or Ctrl-C here must not reach the job
            close_fds=True,
        )
    finally:
        log.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    line = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            break
        if proc.poll() is not None:
            break
    proc.stdout.close()
    if line.strip() != b"ready":
        tail = (job / "supervisor.log").read_text(errors="replace")[-2000:]
        if proc.poll() is None:
            proc.kill()
        store.set_run_status(run_id, "FAILED", error=f"the job's supervisor did not start: {tail}")
        raise BackendError(
            f"the training job's supervisor did not start:\n{tail}",
            fix="see the log above; `python -m kfnb.training.supervise` must run in this "
            "environment",
        )
