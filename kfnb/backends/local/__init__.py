"""The ``local`` backend, kfnb's embedded default: run a pipeline on this machine.

``submit`` checks that every step fits this machine (GPUs, CPUs, memory), records the run in
the store, writes each step's notebook into the run's artifacts directory, looks up which steps
the cache can serve, and starts a ``Scheduler`` thread that takes fresh kernels from this
process's kernel pool (``kfnb.kernels``). Values flow between steps through
``<artifacts>/data/<step>/``; each step's executed notebook and log are artifacts of the run.
The user's notebook is never written.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...dag import Pipeline
from ...hashing import step_hashes
from ...tracking import Store
from .. import Backend, RunHandle
from .cache import find_hits
from .resources import Pool, detect_gpus, machine_memory
from .scheduler import RunPaths, Scheduler

if TYPE_CHECKING:
    from ...kernels import KernelPool


def default_parallelism() -> int:
    """Steps at once: ``KFNB_MAX_PARALLEL``, else twice the CPU count and at least 8.

    Notebook steps often wait (on I/O, a GPU, a sleep, a remote service) rather than compute, so
    the default lets more steps run than there are cores; steps that declare ``limit:cpu`` or
    ``limit:memory`` are held back by those budgets as well.
    """
    env = os.environ.get("KFNB_MAX_PARALLEL")
    if env:
        return int(env)
    return max(8, 2 * (os.cpu_count() or 1))


@dataclass
class LocalConfig:
    """Settings of the local backend; ``None`` means "detect on this machine"."""

    max_parallel: int | None = None
    gpus: list[str] | None = None
    cpus: float | None = None
    memory: float | None = None
    kernel_name: str | None = None
    cache: bool = True  # reuse earlier results of steps whose content hash matches
    pool_size: int = 2  # fresh kernels kept ready in this process between runs
    preload: tuple[str, ...] = ()  # modules the kernel fork server imports once for all kernels
    fork_server: bool | None = None  # None: when the kernelspec is this Python's ipykernel

    def pool(self) -> Pool:
        return Pool(
            max_parallel=self.max_parallel or default_parallelism(),
            cpus=self.cpus if self.cpus is not None else float(os.cpu_count() or 1),
            memory=self.memory if self.memory is not None else machine_memory(),
            gpus=self.gpus if self.gpus is not None else detect_gpus(),
        )


class LocalRunHandle(RunHandle):
    """A run going on in a scheduler thread of this process."""

    def __init__(
        self, store: Store, run_id: str, scheduler: Scheduler, thread: threading.Thread
    ) -> None:
        super().__init__(store, run_id)
        self.scheduler = scheduler
        self.thread = thread

    def wait(self, timeout: float | None = None) -> str:
        self.thread.join(timeout)
        return self.status

    def cancel(self) -> None:
        self.scheduler.cancel()


class LocalBackend(Backend):
    name = "local"
    config_class = LocalConfig
    config: LocalConfig

    def submit(self, pipeline: Pipeline, params: Mapping[str, Any], store: Store) -> RunHandle:
        pool = self.config.pool()
        for step in pipeline.steps:
            pool.check(step)
        store.recover()
        source = Path(pipeline.source).resolve() if pipeline.source else None
        run = store.create_run(
            kind="pipeline",
            name=pipeline.name,
            backend=self.name,
            notebook=str(source) if source else None,
            notebook_hash=_file_hash(source) if source else None,
            params=dict(params),
            steps=[s.name for s in pipeline.steps],
        )
        cwd = source.parent if source else Path.cwd()
        kernel_name = self.kernel_name(pipeline)
        # steps read relative paths from cwd, and the kernelspec is their Python: both are part
        # of what a cached result depends on
        hashes = step_hashes(pipeline, params, context={"cwd": str(cwd), "kernel": kernel_name})
        cached = find_hits(pipeline, hashes, store, enabled=self.config.cache, run_id=run.id)
        kernels = self.kernel_pool(pipeline) if len(cached) < len(pipeline.steps) else None
        paths = RunPaths(Path(run.artifacts_dir))
        paths.make()
        if kernels is not None:
            import nbformat

            from ...materialize import step_notebook

            for step in pipeline.steps:
                if step.name not in cached:
                    nb = step_notebook(pipeline, step, data_dir=str(paths.data))
                    nbformat.write(nb, paths.steps / f"{step.name}.ipynb", version=4)
        scheduler = Scheduler(
            pipeline=pipeline,
            run_id=run.id,
            store=store,
            pool=pool,
            kernels=kernels,
            paths=paths,
            params=dict(params),
            hashes=hashes,
            cwd=cwd,
            kernel_name=self.config.kernel_name,
            cached=cached,
        )
        thread = threading.Thread(target=scheduler.run, name=f"kfnb-run-{run.id}", daemon=True)
        thread.start()
        return LocalRunHandle(store, run.id, scheduler, thread)

    def kernel_name(self, pipeline: Pipeline) -> str:
        """The kernelspec steps run on: the config's, else the notebook's, else python3."""
        name = self.config.kernel_name or pipeline.kernel.get("kernelspec", {}).get("name")
        return str(name or "python3")

    def kernel_pool(self, pipeline: Pipeline) -> KernelPool:
        """This process's pool of fresh kernels for the pipeline's kernelspec."""
        from ...kernels import PoolConfig, shared_pool

        return shared_pool(
            PoolConfig(
                size=self.config.pool_size,
                kernel_name=self.kernel_name(pipeline),
                preload=tuple(self.config.preload),
                fork_server=self.config.fork_server,
            )
        )


def _file_hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
