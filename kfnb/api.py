"""The Python facade: ``kfnb.run(notebook, params=...)`` and the run object it returns.

``run`` parses the notebook, checks the parameter values against its parameters cell, picks the
backend by name and submits. ``run(resume=RUN)`` (``kfnb run --resume RUN``,
``get_run(RUN).resume()``) starts a new run of RUN's notebook, as it is now, with RUN's
parameters, that reuses the steps RUN finished (whatever the cache settings) and runs the failed,
skipped and cancelled ones and what depends on them. The returned ``PipelineRun`` reads
everything from the run store, so it shows the same thing as ``kfnb show`` and the Jupyter side
panel.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backends import BackendError, RunHandle, RunView, StoreRunHandle, get_backend, open_backend
from .dag import Pipeline
from .display import RunDisplay
from .errors import KfnbError
from .handles import attach
from .params import resolve_params
from .settings import Settings
from .tracking import TERMINAL_RUN, Run, StepRun, Store

if TYPE_CHECKING:
    from .backends.kfp.compiler import Compiled
    from .kernels import KernelPool
    from .widgets import RunsTable


class NothingToResume(KfnbError):
    """``run(resume=RUN)`` of a run that succeeded: every step's results are there already."""


class PipelineRun(RunDisplay, RunView):
    """A pipeline run: its status, steps, metrics, logs and the values its steps produced."""

    def __init__(self, store: Store, run_id: str, handle: RunHandle | None = None) -> None:
        super().__init__(store, run_id)
        self.handle = handle

    def __repr__(self) -> str:
        r = self.record
        return f"<PipelineRun {r.id} {r.name!r} {r.status}>"

    @property
    def status(self) -> str:
        """The run's status, as its backend's handle knows it when this process follows it (it
        knows the end of a run whose store could not record it), else as recorded."""
        return self.handle.status if self.handle is not None else self.record.status

    @property
    def steps(self) -> list[StepRun]:
        return self.record.steps

    @property
    def metrics(self) -> dict[str, float]:
        return self.record.metrics

    @property
    def params(self) -> dict[str, Any]:
        return self.record.params

    def wait(self, timeout: float | None = None) -> PipelineRun:
        """Block until the run ends (or ``timeout`` seconds pass)."""
        self._follow.wait(timeout)
        return self

    def cancel(self) -> None:
        """Stop the run: running steps are killed, the others marked cancelled."""
        self._follow.cancel()

    @property
    def _follow(self) -> RunHandle:
        """The backend's handle, else one that follows the run through the store."""
        return self.handle if self.handle is not None else StoreRunHandle(self.store, self.id)

    def resume(self, *, wait: bool = True, **options: Any) -> PipelineRun:
        """A new run that reuses this (failed or cancelled) run's finished steps and runs the
        others: ``kfnb.run(resume=self.id, ...)``."""
        return run(resume=self.id, store=self.store, wait=wait, **options)

    def outputs(self, step: str) -> dict[str, Any]:
        """The values ``step`` handed on to later steps, loaded back into Python."""
        from . import marshal

        record = self.record
        record.step(step)  # raises for an unknown step
        return marshal.load_folder(Path(record.artifacts_dir) / "data" / step, step=step)


def run(
    notebook: str | Path | Pipeline | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    resume: str | None = None,
    backend: str | None = None,
    wait: bool = True,
    store: Store | None = None,
    settings: Settings | None = None,
    config: Any = None,
    param_strings: Sequence[tuple[str, str]] = (),
    **options: Any,
) -> PipelineRun:
    """Run a notebook as a pipeline: the one facade every surface calls.

    ``params`` are typed values, ``param_strings`` ``(name, text)`` pairs as typed on a command
    line or in a form (converted to each parameter's type). ``options`` are the backend's
    options (``kfnb.backends.get_backend(name).options()``); an unknown one is an error naming
    the nearest. Settings (environment, config file) are read here once unless given.

    ``resume``: the id (or prefix) of a failed or cancelled run to go on with: a new run of its
    notebook (``notebook`` defaults to the run's; the file as it is now, with a warning on
    stderr when it changed since) with its parameters (``params`` may not be given), recorded
    with ``spec["resumed_from"]``. The steps that succeeded in it are reused, even where the
    cache is off, unless their code (or what they depend on) changed; the others run.
    ``NothingToResume`` for a run that succeeded. Local runs only.
    """
    settings = settings if settings is not None else Settings.load()
    resumed: Run | None = None
    if resume is not None:
        store = store if store is not None else settings.store()
        resumed = _resumable(store, resume, backend, params, param_strings)
        notebook = notebook if notebook is not None else resumed.notebook
        params, backend = resumed.params, resumed.backend
    if notebook is None:
        raise KfnbError("no notebook to run", fix="pass a notebook path, or resume=RUN_ID")
    backend = backend or "local"
    if config is not None:
        impl = get_backend(backend)(config, settings)
        if options:
            raise BackendError(
                f"options {', '.join(map(repr, options))} given together with a config object",
                fix="put them in the config object, or pass options alone",
            )
    else:
        impl = open_backend(backend, settings, options)  # a bad option fails before parsing
    pipeline = notebook if isinstance(notebook, Pipeline) else Pipeline.from_notebook(notebook)
    values = resolve_params(pipeline, params, param_strings)
    store = store if store is not None else settings.store()
    if resumed is not None:
        from .backends.local import LocalBackend, _file_hash

        assert isinstance(impl, LocalBackend)  # _resumable checked the backend
        source = Path(pipeline.source).resolve() if pipeline.source else None
        if source is not None and _file_hash(source) != resumed.notebook_hash:
            print(
                f"kfnb: warning: {source} changed since run {resumed.id}: its steps whose code "
                "(or whose upstream steps) changed run again, with the notebook as it is now",
                file=sys.stderr,
                flush=True,
            )
        handle = impl.submit(pipeline, values, store, resumed_from=resumed)
    else:
        handle = impl.submit(pipeline, values, store)
    result = PipelineRun(store, handle.id, handle)
    if wait:
        result.wait()
    return result


def _resumable(
    store: Store,
    run_id: str,
    backend: str | None,
    params: Mapping[str, Any] | None,
    param_strings: Sequence[tuple[str, str]],
) -> Run:
    """The run ``run(resume=run_id)`` goes on with, once checked that it can."""
    store.recover()
    old = store.get_run(run_id)
    if old.kind != "pipeline":
        raise KfnbError(
            f"run {old.id} is a {old.kind} run, not a pipeline run",
            fix="resume a pipeline run (`kfnb tune --resume STUDY` goes on with a study)",
        )
    if old.backend != "local" or old.remote is not None:
        raise KfnbError(
            f"run {old.id} ran on the {old.backend!r} backend: only local runs can be resumed",
            fix=f"start it again: kfnb run {shlex.quote(old.notebook or 'NOTEBOOK')} "
            f"--backend {shlex.quote(old.backend)}"
            " (Kubeflow's own step cache reuses the steps that succeeded)",
        )
    if backend not in (None, old.backend):
        raise KfnbError(
            f"run {old.id} ran on the {old.backend!r} backend; a resumed run runs there too",
            fix="leave the backend out",
        )
    if params or param_strings:
        raise KfnbError(
            f"a resumed run takes the parameters of run {old.id}",
            fix="leave the parameters out, or start a new run with them",
        )
    if old.status not in TERMINAL_RUN:
        raise KfnbError(
            f"run {old.id} is still {old.status.lower()}",
            fix=f"wait for it to end (kfnb show {old.id}), or cancel it first",
        )
    if old.status == "SUCCEEDED":
        raise NothingToResume(
            f"nothing to resume: run {old.id} succeeded (every step's results are there)",
            fix="start a new run to run it again",
        )
    if old.notebook is None:
        raise KfnbError(
            f"run {old.id} records no notebook file (a pipeline built in Python)",
            fix="pass the notebook: kfnb.run(NOTEBOOK, resume=RUN_ID)",
        )
    return old


def warm(
    size: int = 2,
    *,
    kernel_name: str = "python3",
    preload: Sequence[str] = (),
    settings: Settings | None = None,
) -> KernelPool:
    """Keep ``size`` fresh kernels ready in this process (a notebook kernel, a Jupyter server),
    so that the next local run starts at once. ``preload`` modules are imported once for every
    kernel (default: the local backend's ``preload`` option, from the environment or the config
    file, as runs of this process will ask for)."""
    from .backends.local import LocalBackend

    given = {"preload": tuple(preload)} if preload else {}
    local = open_backend("local", settings, given)
    assert isinstance(local, LocalBackend)
    return local.warm(size, kernel_name)


def runs(
    notebook: str | Path | None = None,
    limit: int = 50,
    store: Store | None = None,
    settings: Settings | None = None,
) -> RunsTable:
    """Recent runs (of ``notebook`` when given) as a ``kfnb.widgets.RunsTable``: a sortable
    table widget in a notebook, a plain text table (``repr``) elsewhere."""
    from .widgets import RunsTable

    if store is None:
        store = (settings if settings is not None else Settings.load()).store()
    return RunsTable(notebook, store=store, limit=limit)


def get_run(
    run_id: str, store: Store | None = None, settings: Settings | None = None
) -> PipelineRun:
    """A run recorded in the store (by id or unique id prefix); a remote run still going on is
    followed through its backend (``wait`` and ``cancel`` reach the cluster)."""
    settings = settings if settings is not None else Settings.load()
    store = store if store is not None else settings.store()
    record = store.get_run(run_id)
    handle = None
    if record.remote is not None and not record.done:
        handle = attach(store, record.id, settings)
    return PipelineRun(store, record.id, handle)


def compile(
    notebook: str | Path | Pipeline,
    output: str | Path,
    *,
    image: str | None = None,
    accelerator: str | None = None,
    packages: Sequence[str] = (),
    cache: bool = True,
    settings: Settings | None = None,
) -> Compiled:
    """Compile a notebook to a Kubeflow Pipelines v2 pipeline (IR YAML) at ``output``.

    ``image`` is the base image of steps whose notebook names none; ``accelerator`` what a
    step's GPU count asks for (default ``nvidia.com/gpu``); ``packages`` are pip-installed when
    a step's pod starts (none by default: the image should hold them).
    """
    from .backends.kfp import KfpBackend
    from .backends.kfp.compiler import compile_pipeline

    settings = settings if settings is not None else Settings.load()
    given = {
        "image": image,
        "accelerator": accelerator,
        "packages": tuple(packages) or None,
        "cache": None if cache else False,
    }
    cfg = KfpBackend.configure(settings, given)
    pipeline = notebook if isinstance(notebook, Pipeline) else Pipeline.from_notebook(notebook)
    return compile_pipeline(pipeline, output, cfg.compile_options())
