"""GPU training from the notebook: ``kfnb.train(fn, args, procs_per_node=2, gpus_per_node=2)``.

A function (or a cell, ``%%train``; or a script, ``kfnb train script.py``) becomes a program
(``program``: a real module with the notebook code and values it needs, its arguments typed by
its signature), which a training backend runs: ``local`` (``local``: torchrun on this machine's
leased GPUs, driven by a supervisor process, ``supervise``, that outlives the kernel), or
``trainjob`` / ``pytorchjob`` (``cluster``: a Kubeflow TrainJob or PyTorchJob, the program
travelling inside it, ``manifests``). The job is a ``train`` run in the store
(``job.TrainJob``), with one step per rank (local) or node (cluster).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import BackendError
from .job import TrainJob
from .program import Program, ProgramError

if TYPE_CHECKING:
    from ..tracking import Run, Store

__all__ = [
    "Program",
    "ProgramError",
    "TrainJob",
    "attach",
    "local_gpus",
    "submit",
    "train",
    "train_step",
]

BACKENDS = ("local", "trainjob", "pytorchjob")


def train(
    target: Any,
    args: Mapping[str, Any] | None = None,
    *,
    arg_strings: Iterable[tuple[str, str]] = (),
    argv: Iterable[str] = (),
    cwd: str | Path | None = None,
    **how: Any,
) -> Any:
    """Train ``target``: a function (called with ``args``, typed by its signature;
    ``arg_strings`` are texts to convert) or the path of a Python script (run with ``argv``).
    ``how`` is ``submit``'s: ``procs_per_node``, ``gpus_per_node``, ``nodes``, ``backend``,
    ``image``, ``namespace``, ``cpu``, ``memory``, ``env``, ``wait``, ``dry_run``. Returns the
    job at once (``wait=True``: once it ended; ``dry_run=True``: the cluster manifest)."""
    if isinstance(target, (str, os.PathLike)):
        if args or tuple(arg_strings):
            raise BackendError(
                "a script takes command-line arguments, not typed args",
                fix="pass argv=[...] (on the command line: after --)",
            )
        script = Path(target)
        program = Program.from_script(script, argv)
        cwd = cwd if cwd is not None else script.resolve().parent
    else:
        program = Program.from_function(target, args, arg_strings)
    return submit(program, cwd=cwd, **how)


def train_step(
    notebook: str | Path,
    step: str,
    params: Mapping[str, Any] | None = None,
    *,
    param_strings: Iterable[tuple[str, str]] = (),
    **how: Any,
) -> Any:
    """Train pipeline step ``step`` of ``notebook``: every rank runs the notebook's prelude and
    the step's cells. The steps it depends on run first, as a pipeline run on this machine (the
    step cache makes that instant when they ran before); their values are the step's inputs.
    ``how`` is ``submit``'s."""
    import dataclasses

    from ..api import run
    from ..dag import Pipeline
    from ..marshal import load
    from ..params import resolve_params

    pipeline = Pipeline.from_notebook(notebook)
    target = pipeline.step(step)
    values = resolve_params(pipeline, params, param_strings)
    before = _upstream(pipeline, step)
    inputs: dict[str, Any] = {}
    if before:
        sub = dataclasses.replace(
            pipeline,
            steps=[s for s in pipeline.steps if s.name in before],
            metrics=[m for m in pipeline.metrics if m.step in before],
        )
        upstream = run(sub, values, wait=True)
        if upstream.status != "SUCCEEDED":
            raise BackendError(
                f"the steps {step!r} needs ({', '.join(sorted(before))}) did not succeed: "
                f"run {upstream.id} ended {upstream.status}",
                fix=f"see `kfnb show {upstream.id}`, fix the notebook, then train again",
            )
        data = Path(upstream.record.artifacts_dir) / "data"
        inputs = {
            var: load(data / provider, var, step=step)
            for var, provider in sorted(target.inputs.items())
        }
    program = Program.from_step(pipeline, step, inputs, values)
    cwd = how.pop("cwd", None) or Path(notebook).resolve().parent
    return submit(program, cwd=cwd, **how)


def _upstream(pipeline: Any, step: str) -> set[str]:
    """Every step ``step`` depends on, directly or not."""
    found: set[str] = set()
    todo = list(pipeline.step(step).after)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += pipeline.step(name).after
    return found


def submit(
    program: Program,
    *,
    procs_per_node: int = 1,
    gpus_per_node: int = 0,
    nodes: int = 1,
    backend: str = "local",
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    wait: bool = False,
    image: str | None = None,
    namespace: str | None = None,
    cpu: str | None = None,
    memory: str | None = None,
    dry_run: bool = False,
    parent_id: str | None = None,
) -> Any:
    """Start ``program`` on ``backend``: the one entry point of every training surface. The
    job (``TrainJob``); with ``dry_run`` (cluster backends) the manifest it would submit;
    ``parent_id``: the run it belongs to (a study's trial)."""
    from ..settings import Settings
    from . import cluster, local

    if backend not in BACKENDS:
        raise BackendError(f"no training backend {backend!r}", fix=f"known: {', '.join(BACKENDS)}")
    settings = Settings.load()
    job: TrainJob
    if backend in cluster.KINDS:
        kind = cluster.KINDS[backend]
        ask = cluster.Ask(
            image=image,
            nodes=nodes,
            procs=procs_per_node,
            gpus=gpus_per_node,
            cpu=cpu,
            memory=memory,
            env=env,
            notebook=_notebook(),
        )
        if dry_run:
            return cluster.dry_run(program, kind, ask, namespace)
        job = cluster.submit(
            program,
            settings.store(),
            kind,
            cluster.Target(namespace=namespace),
            ask,
            parent_id=parent_id,
        )
    else:
        if dry_run:
            raise BackendError(
                "dry_run shows what a cluster backend would submit; the local backend has "
                "nothing to show",
                fix="pass backend='trainjob' or 'pytorchjob' with dry_run",
            )
        job = local.submit(
            program,
            settings.store(),
            procs=procs_per_node,
            gpus=gpus_per_node,
            nodes=nodes,
            cwd=Path(cwd) if cwd is not None else None,
            notebook=_notebook(),
            env=env,
            settings_env=settings.env,
            gpu_ids=local_gpus(),
            parent_id=parent_id,
        )
    if wait:
        job.wait()
    return job


def local_gpus() -> list[str]:
    """The GPU ids local jobs may lease (``KFNB_GPUS``, else ``CUDA_VISIBLE_DEVICES``, else
    ``nvidia-smi``), found without initialising CUDA in this process."""
    from ..backends import get_backend
    from ..backends.local.resources import detect_gpus
    from ..settings import Settings

    settings = Settings.load()
    given = get_backend("local").configure(settings, {}).gpus
    return list(given) if given is not None else detect_gpus(settings.env)


def attach(run_id: str) -> TrainJob:
    """The training job ``run_id`` (or a unique prefix), from any process; a cluster job is
    followed through its cluster (``refresh``, ``wait`` and ``cancel`` reach it)."""
    from ..settings import Settings

    store = Settings.load().store()
    return attach_record(store, store.get_run(run_id))


def attach_record(store: Store, record: Run) -> TrainJob:
    """A handle on the recorded training job ``record``."""
    from . import cluster

    if record.backend in cluster.KINDS:
        remote = record.remote or {}
        api, _ = cluster.connect(cluster.Target(namespace=remote.get("namespace")))
        return cluster.ClusterJob(store, record.id, api, cluster.KINDS[record.backend])
    return TrainJob(store, record.id)


def _notebook() -> str | None:
    """The notebook of the kernel this runs in, as ``%kfnb`` finds it (an absolute path, as
    pipeline runs record theirs, so the panel lists the notebook's jobs with its runs)."""
    from ..errors import KfnbError
    from ..session import notebook_path

    try:
        return str(notebook_path(None).resolve())
    except KfnbError:
        return None
