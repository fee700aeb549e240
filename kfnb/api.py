"""The Python facade: ``kfnb.run(notebook, params=...)`` and the run object it returns.

``run`` parses the notebook, checks the parameter values against its parameters cell, picks the
backend by name and submits. The returned ``PipelineRun`` reads everything from the run store, so
it shows the same thing as ``kfnb show`` and the Jupyter side panel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backends import Backend, BackendError, RunHandle, RunView, StoreRunHandle, get_backend
from .dag import Pipeline
from .params import resolve_params
from .tracking import StepRun, Store

if TYPE_CHECKING:
    from .backends.kfp.compiler import Compiled
    from .widgets import RunsTable, RunWidget


class PipelineRun(RunView):
    """A pipeline run: its status, steps, metrics, logs and the values its steps produced."""

    def __init__(self, store: Store, run_id: str, handle: RunHandle | None = None) -> None:
        super().__init__(store, run_id)
        self.handle = handle

    def __repr__(self) -> str:
        r = self.record
        return f"<PipelineRun {r.id} {r.name!r} {r.status}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """In a notebook kernel with ipywidgets: the live ``RunWidget`` (widget view, a static
        HTML snapshot, text); elsewhere the run as text."""
        if _widgets_usable():
            return self.widget().bundle()
        from .progress import render

        return {"text/plain": "\n".join(render(self.record))}

    def _ipython_display_(self) -> None:
        """``display(run)`` or a bare ``run`` in a cell: the live widget under a display id, so
        the saved notebook keeps the final state; plain text elsewhere."""
        if _widgets_usable():
            self.widget().display()
            return
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)

    def widget(self, poll: float = 0.5) -> RunWidget:
        """A ``kfnb.widgets.RunWidget`` following this run."""
        from .widgets import RunWidget

        return RunWidget(self, poll=poll)

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

    def outputs(self, step: str) -> dict[str, Any]:
        """The values ``step`` handed on to later steps, loaded back into Python."""
        from . import marshal

        record = self.record
        record.step(step)  # raises for an unknown step
        return marshal.load_folder(Path(record.artifacts_dir) / "data" / step, step=step)


def run(
    notebook: str | Path | Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    backend: str = "local",
    wait: bool = True,
    store: Store | None = None,
    config: Any = None,
    **options: Any,
) -> PipelineRun:
    """Run a notebook as a pipeline. ``options`` fill the backend's config (e.g. max_parallel)."""
    pipeline = notebook if isinstance(notebook, Pipeline) else Pipeline.from_notebook(notebook)
    values = resolve_params(pipeline, params)
    cls = get_backend(backend)
    cfg = config if config is not None else _config(cls, options)
    store = store if store is not None else Store()
    handle = cls(cfg).submit(pipeline, values, store)
    result = PipelineRun(store, handle.id, handle)
    if wait:
        result.wait()
    return result


def _config(cls: type[Backend], options: Mapping[str, Any]) -> Any:
    """The backend's config from keyword options; an unknown one is named with the known ones."""
    known = [f.name for f in dataclasses.fields(cls.config_class)]
    unknown = [k for k in options if k not in known]
    if unknown:
        raise BackendError(
            f"backend {cls.name!r} has no option {', '.join(map(repr, unknown))}. "
            f"Fix: use one of: {', '.join(known)}"
        )
    return cls.config_class(**options)


def runs(
    notebook: str | Path | None = None, limit: int = 50, store: Store | None = None
) -> RunsTable:
    """Recent runs (of ``notebook`` when given) as a ``kfnb.widgets.RunsTable``: a sortable
    table widget in a notebook, a plain text table (``repr``) elsewhere."""
    from .widgets import RunsTable

    return RunsTable(notebook, store=store, limit=limit)


def _widgets_usable() -> bool:
    """Whether this process is a notebook kernel (IPython with a kernel) with ipywidgets."""
    import importlib.util
    import sys

    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    return importlib.util.find_spec("ipywidgets") is not None


def get_run(run_id: str, store: Store | None = None) -> PipelineRun:
    """A run recorded in the store (by id or unique id prefix); a remote run still going on is
    followed through its backend (``wait`` and ``cancel`` reach the cluster)."""
    store = store if store is not None else Store()
    record = store.get_run(run_id)
    handle = None
    if record.remote is not None and not record.done:
        handle = get_backend(record.backend)().attach(store, record.id)
    return PipelineRun(store, record.id, handle)


def compile(
    notebook: str | Path | Pipeline,
    output: str | Path,
    *,
    image: str | None = None,
    accelerator: str | None = None,
    packages: Sequence[str] = (),
    cache: bool = True,
) -> Compiled:
    """Compile a notebook to a Kubeflow Pipelines v2 pipeline (IR YAML) at ``output``.

    ``image`` is the base image of steps whose notebook names none; ``accelerator`` what a
    step's GPU count asks for (default ``nvidia.com/gpu``); ``packages`` are pip-installed when
    a step's pod starts (none by default: the image should hold them).
    """
    from .backends.kfp import KfpConfig
    from .backends.kfp.compiler import compile_pipeline

    pipeline = notebook if isinstance(notebook, Pipeline) else Pipeline.from_notebook(notebook)
    cfg = KfpConfig(
        image=image, accelerator=accelerator, packages=tuple(packages), cache=cache
    ).resolved()
    return compile_pipeline(pipeline, output, cfg.compile_options())
