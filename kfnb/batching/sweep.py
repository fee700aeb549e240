"""``kfnb.batch(notebook, grid=... | sets=...)``: a parameter sweep of a notebook.

The sweep is a ``batch`` run (its spec holds the sets and settings); each set is a ``pipeline``
run under it, started by a ``runner.BatchRunner`` thread through one local backend object, so
the sets share this machine's slots, the warm kernels and the step cache. ``Batch`` is the
caller's handle: wait, cancel, ``results()`` (a pandas DataFrame), ``to_csv/json/markdown``,
``resume()``; it shows as the live ``BatchWidget`` in a notebook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import RunHandle, RunnerHandle, RunView, StoreRunHandle
from ..display import RunDisplay
from ..errors import KfnbError, NotResumable
from ..jsonio import dumps
from .runner import BatchRunner, runs_of
from .sets import make_sets
from .view import batch_view, metric_names, param_names

if TYPE_CHECKING:
    from ..settings import Settings
    from ..tracking import Store
    from ..widgets.batch import BatchWidget

RETRIES = 1  # runs again of a set that failed for an infrastructure fault


def batch(
    notebook: Any = None,
    grid: Any = None,
    sets: Any = None,
    *,
    params: Mapping[str, Any] | None = None,
    param_strings: Any = (),
    max_parallel: int | None = None,
    retries: int = RETRIES,
    retry_failed: bool = False,
    backend: str = "local",
    options: Mapping[str, Any] | None = None,
    wait: bool = False,
    resume: str | None = None,
    store: Store | None = None,
    settings: Settings | None = None,
) -> Batch:
    """Run ``notebook`` once per parameter set, as pipeline runs under one batch run.

    ``grid`` maps parameter names to lists of values (their product; a list of such maps is
    the union; or a YAML file), ``sets`` is a list of dicts or a CSV file (one set per row,
    typed by the parameters cell). ``params`` fix other parameters for every set. Every set is
    checked before anything runs. ``max_parallel`` sets run at once; a set that failed for an
    infrastructure fault (a dead kernel, a timeout) runs again up to ``retries`` times (any
    failure, with ``retry_failed``). ``options`` go to the local backend. Returns the ``Batch``
    at once (``wait=True``: once it ended). ``resume=BATCH_ID`` runs again the sets of that
    batch that did not succeed.
    """
    from ..backends import open_backend
    from ..dag import Pipeline
    from ..settings import Settings

    settings = settings if settings is not None else Settings.load()
    store = store if store is not None else settings.store()
    if backend != "local":
        raise KfnbError(
            f"a batch runs on the local backend, not {backend!r}",
            fix="leave backend out (its sets share this machine's slots and step cache)",
        )
    if resume is not None:
        return _resume(resume, store, settings, options, wait)
    if notebook is None:
        raise KfnbError("kfnb.batch needs a notebook", fix="kfnb.batch('nb.ipynb', grid={...})")
    pipeline = (
        notebook if isinstance(notebook, Pipeline) else Pipeline.from_notebook(os.fspath(notebook))
    )
    from ..params import resolve_params

    given = dict(params or {})
    strings = list(param_strings)
    values = resolve_params(pipeline, given, strings)
    named = set(given) | {n for n, _ in strings}
    fixed = {n: v for n, v in values.items() if n in named}
    checked = make_sets(pipeline, grid, sets, fixed)
    if max_parallel is not None and (isinstance(max_parallel, bool) or max_parallel < 1):
        raise KfnbError(f"max_parallel must be a positive number, not {max_parallel!r}")
    if isinstance(retries, bool) or retries < 0:
        raise KfnbError(f"retries must be 0 or more, not {retries!r}")
    impl = open_backend("local", settings, dict(options or {}))
    from ..backends.local import default_parallelism

    parallel = max_parallel or min(len(checked), default_parallelism())
    store.recover()
    source = Path(pipeline.source).resolve() if pipeline.source else None
    record = store.create_run(
        kind="batch",
        name=pipeline.name,
        backend="local",
        notebook=str(source) if source else None,
        notebook_hash=None,
        params=fixed,
        spec={
            "batch": {
                "sets": checked,
                "fixed": fixed,
                "max_parallel": parallel,
                "retries": retries,
                "retry_failed": retry_failed,
                "options": dict(options or {}),
                "runs": {},
            }
        },
    )
    runner = BatchRunner(store, record.id, pipeline, impl, list(range(len(checked)))).start()
    found = Batch(store, record.id, RunnerHandle(store, record.id, runner), settings=settings)
    if wait:
        found.wait()
    return found


def _resume(
    batch_id: str,
    store: Store,
    settings: Settings,
    options: Mapping[str, Any] | None,
    wait: bool,
) -> Batch:
    from ..backends import open_backend
    from ..dag import Pipeline

    record = store.get_run(store.resolve_id(batch_id))
    if record.kind != "batch":
        raise NotResumable(
            f"run {record.id} is a {record.kind} run, not a batch",
            fix="pass the id of a batch run (kfnb runs --kind batch)",
        )
    store.recover()
    record = store.get_run(record.id)
    if not record.done:
        raise NotResumable(
            f"batch {record.id} is still {record.status}",
            fix=f"stop it first (kfnb cancel {record.id}), or let it run",
        )
    spec = dict((record.spec or {}).get("batch") or {})
    if not record.notebook:
        raise NotResumable(f"batch {record.id} recorded no notebook to run again")
    pipeline = Pipeline.from_notebook(record.notebook)
    impl = open_backend("local", settings, {**dict(spec.get("options") or {}), **(options or {})})
    runs = runs_of(record)
    todo = []
    for index in range(len(spec.get("sets") or [])):
        ids = runs.get(index) or []
        if not ids or store.get_run(ids[-1]).status != "SUCCEEDED":
            todo.append(index)
    store.resume_run(record.id)
    runner = BatchRunner(store, record.id, pipeline, impl, todo).start()
    found = Batch(store, record.id, RunnerHandle(store, record.id, runner), settings=settings)
    if wait:
        found.wait()
    return found


class Batch(RunDisplay, RunView):
    """A parameter sweep: its sets, their outcomes and metrics, and what can be done with it."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        handle: RunHandle | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(store, run_id)
        self.handle = handle if handle is not None else StoreRunHandle(store, run_id)
        self.settings = settings

    def __repr__(self) -> str:
        view = self.view()
        counts = view["counts"]
        done = counts["SUCCEEDED"] + counts["FAILED"] + counts["CANCELED"]
        return (
            f"<Batch {self.id} {view['name']!r} {view['status']} {done}/{len(view['sets'])} sets>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The live ``BatchWidget`` in a notebook kernel with ipywidgets; text elsewhere."""
        from ..display import widgets_usable

        if widgets_usable():
            return self.widget().bundle()
        from .text import batch_table

        return {"text/plain": "\n".join(batch_table(self.view()))}

    def view(self) -> dict[str, Any]:
        """Everything a surface shows (``kfnb.batching.view.batch_view``)."""
        return batch_view(self.store, self.id)

    @property
    def sets(self) -> list[dict[str, Any]]:
        return list(self.view()["sets"])

    def results(self) -> Any:
        """One row per set: its parameters, status, metrics, run id, executed notebooks'
        folder (a pandas DataFrame)."""
        import pandas as pd

        view = self.view()
        names, metrics = param_names(view), metric_names(view)
        rows = []
        for r in view["sets"]:
            row: dict[str, Any] = {"set": r["set"]}
            row.update({n: r["params"].get(n) for n in names})
            row["status"] = r["status"]
            row.update({m: r["metrics"].get(m) for m in metrics})
            row.update(run=r["run"], runs=r["runs"], notebooks=r["notebooks"], error=r["error"])
            rows.append(row)
        return pd.DataFrame(rows)

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        text: str = self.results().to_csv(index=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        text = dumps(self.view(), indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_markdown(self, path: str | os.PathLike[str] | None = None) -> str:
        from .text import markdown

        text = markdown(self.view())
        if path is not None:
            Path(path).write_text(text)
        return text

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the results by the file's suffix: .csv, .json or .md."""
        suffix = Path(path).suffix.lower()
        writers = {".csv": self.to_csv, ".json": self.to_json, ".md": self.to_markdown}
        if suffix not in writers:
            raise KfnbError(
                f"cannot write results to {str(path)!r}", fix="name a .csv, .json or .md file"
            )
        return writers[suffix](path)

    def wait(self, timeout: float | None = None) -> Batch:
        self.handle.wait(timeout)
        return self

    def refresh(self) -> str:
        return self.handle.refresh()

    def cancel(self) -> None:
        """Stop the batch: running sets are cancelled (``resume()`` runs them again)."""
        self.handle.cancel()

    stop = cancel

    def resume(self, **options: Any) -> Batch:
        """Run again the sets that did not succeed (the succeeded ones are kept)."""
        resumed = batch(resume=self.id, store=self.store, settings=self.settings, options=options)
        self.handle = resumed.handle
        return self

    def widget(self, poll: float = 0.5) -> BatchWidget:  # type: ignore[override]
        from ..widgets.batch import BatchWidget

        return BatchWidget(self, poll=poll)
