"""GPU training from the notebook: ``kfnb.train(fn, args, procs_per_node=2, gpus_per_node=2)``.

A function becomes a program (``program``: a real module with the notebook code and values it
needs, its arguments typed by its signature), which a training backend runs: ``local``
(``local``: torchrun on this machine's leased GPUs, driven by a supervisor process,
``supervise``, that outlives the kernel). The job is a ``train`` run in the store
(``job.TrainJob``), with one step per rank.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..backends import BackendError
from .job import TrainJob
from .program import Program, ProgramError

__all__ = ["Program", "ProgramError", "TrainJob", "attach", "train"]

BACKENDS = ("local",)


def train(
    fn: Any,
    args: Mapping[str, Any] | None = None,
    *,
    arg_strings: Iterable[tuple[str, str]] = (),
    procs_per_node: int = 1,
    gpus_per_node: int = 0,
    nodes: int = 1,
    backend: str = "local",
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    wait: bool = False,
) -> TrainJob:
    """Train ``fn(**args)`` with ``procs_per_node`` processes (torchrun ranks) on
    ``gpus_per_node`` GPUs; return the job (``wait=True``: once it ended)."""
    from ..settings import Settings
    from . import local

    if backend not in BACKENDS:
        raise BackendError(f"no training backend {backend!r}", fix=f"known: {', '.join(BACKENDS)}")
    from ..backends import get_backend

    program = Program.from_function(fn, args, arg_strings)
    settings = Settings.load()
    # the machine's GPUs as the local pipeline backend sees them (its `gpus` option, KFNB_GPUS)
    gpu_ids = get_backend("local").configure(settings, {}).gpus
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
        gpu_ids=list(gpu_ids) if gpu_ids is not None else None,
    )
    if wait:
        job.wait()
    return job


def attach(run_id: str) -> TrainJob:
    """The training job ``run_id`` (or a unique prefix), from any process."""
    from ..settings import Settings

    store = Settings.load().store()
    return TrainJob(store, store.resolve_id(run_id))


def _notebook() -> str | None:
    """The notebook of the kernel this runs in (as ``%kfnb`` finds it), if any."""
    import os

    for key in ("JPY_SESSION_NAME", "__session__"):
        value = os.environ.get(key)
        if value:
            return value
    return None
