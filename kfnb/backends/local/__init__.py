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
from ...gpus import GpuLease
from ...hashing import step_hashes
from ...spec import pipeline_spec
from ...tracking import TERMINAL_RUN, Run, Store
from .. import Availability, Backend, RunHandle, option
from .cache import find_hits
from .resources import Pool, detect_gpus, machine_memory
from .runfiles import RunFilesError, RunPaths, disk_error
from .scheduler import Scheduler

if TYPE_CHECKING:
    from ...kernels import KernelPool
    from ...settings import Settings


def default_parallelism(cpus: int | None = None) -> int:
    """Steps at once by default: twice the CPU count and at least 8.

    Notebook steps often wait (on I/O, a GPU, a sleep, a remote service) rather than compute, so
    the default lets more steps run than there are cores; steps that declare ``limit:cpu`` or
    ``limit:memory`` are held back by those budgets as well.
    """
    return max(8, 2 * (cpus or os.cpu_count() or 1))


@dataclass
class LocalConfig:
    """Settings of the local backend; ``None`` means "detect on this machine"."""

    max_parallel: int | None = option(
        None,
        "most steps at once (default: twice the CPU count, at least 8)",
        env="KFNB_MAX_PARALLEL",
    )
    gpus: list[str] | None = option(
        None,
        "GPU ids steps may use (default: CUDA_VISIBLE_DEVICES, else nvidia-smi's)",
        env="KFNB_GPUS",
    )
    cpus: float | None = option(
        None, "CPUs steps' limit:cpu draw on (default: all)", env="KFNB_CPUS"
    )
    memory: float | None = option(
        None, "bytes steps' limit:memory draw on (default: all)", env="KFNB_MEMORY"
    )
    kernel_name: str | None = option(
        None,
        "kernelspec of the steps (default: the notebook's, else python3)",
        env="KFNB_KERNEL",
    )
    cache: bool = option(
        True, "reuse earlier results of steps whose content hash matches", env="KFNB_CACHE"
    )
    pool_size: int = option(
        2, "fresh kernels kept ready in this process between runs", env="KFNB_POOL_SIZE"
    )
    preload: tuple[str, ...] = option(
        (),
        "modules the kernel fork server imports once for every step's kernel",
        env="KFNB_PRELOAD",
    )
    fork_server: bool | None = option(
        None,
        "fork kernels from a pre-imported process (default: when the kernelspec is "
        "this Python's ipykernel)",
        env="KFNB_FORK_SERVER",
    )
    kernel_transport: str = option(
        "ipc", "ZeroMQ transport of kernels: ipc or tcp", env="KFNB_KERNEL_TRANSPORT", hidden=True
    )
    workdir: str | None = option(
        None,
        "working folder of the steps (default: the notebook's folder)",
        env="KFNB_WORKDIR",
        hidden=True,
    )

    def pool(self, env: Mapping[str, str], home: Path | None = None) -> Pool:
        """This machine's pool; with ``home`` (``KFNB_HOME``) its GPUs are also leased
        machine-wide (``kfnb.gpus``), shared with other processes' runs and jobs."""
        return Pool(
            max_parallel=self.max_parallel or default_parallelism(),
            cpus=self.cpus if self.cpus is not None else float(os.cpu_count() or 1),
            memory=self.memory if self.memory is not None else machine_memory(),
            gpus=list(self.gpus) if self.gpus is not None else detect_gpus(env),
            lease=GpuLease(home / "gpus") if home is not None else None,
        )


_POOL_LOCK = threading.Lock()


class LocalRunHandle(RunHandle):
    """A run going on in a scheduler thread of this process."""

    def __init__(
        self, store: Store, run_id: str, scheduler: Scheduler, thread: threading.Thread
    ) -> None:
        super().__init__(store, run_id)
        self.scheduler = scheduler
        self.thread = thread

    @property
    def status(self) -> str:
        """The recorded status; once the scheduler has finished but the store could not record
        the end (a full disk, a broken store), the status the run ended with."""
        recorded = self.record.status
        final = self.scheduler.final_status
        if recorded not in TERMINAL_RUN and self.scheduler.finished.is_set() and final:
            return final
        return recorded

    def wait(self, timeout: float | None = None) -> str:
        self.thread.join(timeout)
        return self.status

    def cancel(self) -> None:
        self.scheduler.cancel()


class LocalBackend(Backend):
    name = "local"
    config_class = LocalConfig
    config: LocalConfig
    description = "this machine"
    _pool: Pool | None = None

    @classmethod
    def available(cls, settings: Settings) -> Availability:
        cfg: LocalConfig = cls.configure(settings, {})
        cpus = os.cpu_count() or 1
        gpus = list(cfg.gpus) if cfg.gpus is not None else detect_gpus(settings.env)
        ids = f" ({', '.join(gpus)})" if gpus else ""
        return Availability(
            cls.name,
            True,
            f"this machine: {cpus} CPU{'s' * (cpus != 1)}, {len(gpus)} "
            f"GPU{'s' * (len(gpus) != 1)}{ids}",
        )

    def submit(
        self,
        pipeline: Pipeline,
        params: Mapping[str, Any],
        store: Store,
        *,
        parent_id: str | None = None,
        resumed_from: Run | None = None,
    ) -> RunHandle:
        """Start a run; ``resumed_from``: a finished run of the same notebook whose succeeded
        steps (same content hash, outputs still there) this one reuses, cache or not
        (``kfnb run --resume``); the new run records it as ``spec["resumed_from"]``."""
        pool = self.pool()
        for step in pipeline.steps:
            pool.check(step)
        store.recover()
        source = Path(pipeline.source).resolve() if pipeline.source else None
        run = store.create_run(
            kind="pipeline",
            parent_id=parent_id,
            name=pipeline.name,
            backend=self.name,
            notebook=str(source) if source else None,
            notebook_hash=_file_hash(source) if source else None,
            params=dict(params),
            steps=[s.name for s in pipeline.steps],
            spec=pipeline_spec(pipeline)
            | ({"resumed_from": resumed_from.id} if resumed_from is not None else {}),
        )
        if self.config.workdir:
            cwd = Path(self.config.workdir).expanduser().resolve()
        else:
            cwd = source.parent if source else Path.cwd()
        kernel_name = self.kernel_name(pipeline.kernel)
        # steps read relative paths from cwd, and the kernelspec is their Python: both are part
        # of what a cached result depends on
        hashes = step_hashes(pipeline, params, context={"cwd": str(cwd), "kernel": kernel_name})
        reuse = {s.name: s for s in resumed_from.steps} if resumed_from is not None else None
        cached = find_hits(
            pipeline, hashes, store, enabled=self.config.cache, run_id=run.id, reuse=reuse
        )
        kernels = self.kernel_pool(pipeline) if len(cached) < len(pipeline.steps) else None
        paths = RunPaths(Path(run.artifacts_dir))
        try:
            paths.make()
            if kernels is not None:
                self._write_step_notebooks(pipeline, cached, paths)
        except (OSError, RunFilesError) as err:  # a full disk: the run ends with the cause
            failure = err if isinstance(err, RunFilesError) else None
            failure = failure or disk_error(err, paths.root, "cannot write the step notebooks")
            failure = failure or RunFilesError(
                f"cannot write the step notebooks: {err}", where=str(paths.root)
            )
            store.set_run_status(run.id, "FAILED", error=str(failure))
            raise failure from None
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
            env=self.settings.env,
        )
        thread = threading.Thread(target=scheduler.run, name=f"kfnb-run-{run.id}", daemon=True)
        thread.start()
        return LocalRunHandle(store, run.id, scheduler, thread)

    @staticmethod
    def _write_step_notebooks(
        pipeline: Pipeline, cached: Mapping[str, Any], paths: RunPaths
    ) -> None:
        import nbformat

        from ...materialize import step_notebook

        for step in pipeline.steps:
            if step.name not in cached:
                nb = step_notebook(pipeline, step, data_dir=str(paths.data))
                nbformat.write(nb, paths.steps / f"{step.name}.ipynb", version=4)

    def pool(self) -> Pool:
        """This backend's pool of slots, CPUs, memory and GPUs: one per backend object, so the
        runs submitted through it (a study's trials) share the machine's budget."""
        with _POOL_LOCK:
            if self._pool is None:
                self._pool = self.config.pool(self.settings.env, self.settings.home)
            return self._pool

    def kernel_name(self, kernel: Mapping[str, Any]) -> str:
        """The kernelspec steps run on: the config's, else the notebook's (``kernel``: its
        metadata, or ``Pipeline.kernel``), else python3."""
        name = self.config.kernel_name or (kernel.get("kernelspec") or {}).get("name")
        return str(name or "python3")

    def warm(self, size: int, kernel_name: str = "python3") -> KernelPool:
        """Keep ``size`` fresh kernels of ``kernel_name`` ready in this process: the shared pool
        that runs with this config take their kernels from (same preloads, fork server and
        transport), so the next run starts at once."""
        from ...kernels import PoolConfig, shared_pool

        return shared_pool(
            PoolConfig(
                size=size,
                kernel_name=kernel_name,
                preload=tuple(self.config.preload),
                fork_server=self.config.fork_server,
                transport=self.config.kernel_transport,
            )
        )

    def kernel_pool(self, pipeline: Pipeline) -> KernelPool:
        """This process's pool of fresh kernels for the pipeline's kernelspec."""
        from ...kernels import PoolConfig, shared_pool

        return shared_pool(
            PoolConfig(
                size=self.config.pool_size,
                kernel_name=self.kernel_name(pipeline.kernel),
                preload=tuple(self.config.preload),
                fork_server=self.config.fork_server,
                transport=self.config.kernel_transport,
            )
        )


def _file_hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
