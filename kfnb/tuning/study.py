"""A study as its caller holds it: ``Study``, read from the store, driven by its backend.

``kfnb.tune`` returns one; ``kfnb.tuning.attach(id)`` gives one from any process. It shows as
the live ``StudyWidget`` in a notebook, and answers ``best_params``, ``best_value``,
``trials`` and ``trials_dataframe()`` from the store (``view.study_view``), so a local study and
a Katib experiment read alike. ``stop()``, ``add_trials(n)``, ``resume()`` and ``run_best()``
act on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import RunHandle, RunView, StoreRunHandle
from ..display import RunDisplay
from ..errors import KfnbError
from .view import study_settings, study_view

if TYPE_CHECKING:
    from ..settings import Settings
    from ..tracking import Store
    from ..widgets import StudyWidget


class Study(RunDisplay, RunView):
    """A tuning study: its trials, the best so far, and what can be done with it."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        handle: RunHandle | None = None,
        *,
        target: Any = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(store, run_id)
        self.handle = handle if handle is not None else StoreRunHandle(store, run_id)
        self.target = target  # what the trials run, for resume() and run_best()
        self.settings = settings

    def __repr__(self) -> str:
        view = self.view()
        best = view["best"]
        shown = f" best {best['value']:.6g} (trial {best['number']})" if best else ""
        done = sum(view["counts"][s] for s in ("SUCCEEDED", "PRUNED", "FAILED"))
        return (
            f"<Study {self.id} {view['name']!r} {view['status']} "
            f"{done}/{view['study'].get('trials')} trials{shown}>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The live ``StudyWidget`` in a notebook kernel with ipywidgets (its static HTML in a
        headless one: papermill); the trials table as text elsewhere."""
        from ..display import display_mode

        mode = display_mode()
        if mode == "widget":
            return self.widget().bundle()
        if mode == "static":
            return self.static_bundle()
        from .text import study_table

        return {"text/plain": "\n".join(study_table(self.view()))}

    # -- reading ----------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """Everything a surface shows (``kfnb.tuning.view.study_view``)."""
        return study_view(self.store, self.id)

    @property
    def trials(self) -> list[dict[str, Any]]:
        """One row per trial: number, status, params, value, intermediate, duration, run."""
        return list(self.view()["trials"])

    @property
    def best_trial(self) -> dict[str, Any]:
        best = self.view()["best"]
        if best is None:
            raise KfnbError(
                f"study {self.id} has no succeeded trial yet",
                fix="wait for one (study.wait()), or see the trials' errors: study.trials",
            )
        return dict(best)

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.best_trial["params"])

    @property
    def best_value(self) -> float:
        return float(self.best_trial["value"])

    def trials_dataframe(self) -> Any:
        """The trials as a pandas DataFrame, one row per trial (Optuna's columns: ``number``,
        ``value``, ``state``, ``duration``, ``params_<name>``; plus ``run``)."""
        import pandas as pd

        rows = []
        for t in self.trials:
            row = {
                "number": t["number"],
                "value": t["value"],
                "state": t["status"],
                "datetime_start": _stamp(t["started_at"]),
                "datetime_complete": _stamp(t["finished_at"]),
                "duration": pd.to_timedelta(t["duration"], unit="s")
                if t["duration"] is not None
                else pd.NaT,
            }
            row.update({f"params_{k}": v for k, v in t["params"].items()})
            row["run"] = t["run"]
            rows.append(row)
        return pd.DataFrame(rows)

    # -- acting -----------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> Study:
        """Block until the study ends (or ``timeout`` seconds pass)."""
        self.handle.wait(timeout)
        return self

    def refresh(self) -> str:
        return self.handle.refresh()

    def stop(self) -> None:
        """Stop the study: running trials are cancelled (a ``resume()`` runs them again)."""
        self.handle.cancel()

    cancel = stop

    def add_trials(self, n: int, **options: Any) -> Study:
        """Raise the study's budget by ``n`` trials; a study that ended goes on (resumes, with
        ``options`` for its backend)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise KfnbError(f"add_trials takes a positive number, not {n!r}")
        record = self.record
        spec = dict(record.spec or {})
        study = dict(spec.get("study") or {})
        study["trials"] = int(study.get("trials", 0)) + n
        self.store.set_spec(self.id, {**spec, "study": study})
        try:
            self.handle.refresh()  # a cluster study raises its experiment's budget
            if self.record.done:
                return self.resume(**options)
        except BaseException:
            self.store.set_spec(self.id, record.spec or {})  # the budget stays as it was
            raise
        return self

    def resume(self, **options: Any) -> Study:
        """Go on with a study that was stopped or whose runner died: finished trials stay,
        the trials it was running run again (``options``: its backend's, as for ``tune``)."""
        from . import tune

        resumed = tune(
            self.target, resume=self.id, options=options, store=self.store, settings=self.settings
        )
        self.handle = resumed.handle
        return self

    def run_best(self, *, wait: bool = False, **options: Any) -> Any:
        """Run the target once more with the best parameters: a pipeline run of the notebook
        (``kfnb.run``), or a training job of the function; ``options`` go to that call."""
        settings = study_settings(self.record)
        params = {**dict(settings.get("fixed") or {}), **self.best_params}
        target = self.target
        if target is None:
            notebook = (settings.get("target") or {}).get("notebook")
            if not notebook:
                raise KfnbError(
                    f"study {self.id} tuned a function this process does not hold",
                    fix="call kfnb.train(fn, args=study.best_params)",
                )
            target = notebook
        if isinstance(target, (str, Path)) or hasattr(target, "steps"):
            from ..api import run

            return run(target, params, wait=wait, store=self.store, **options)
        from ..training import train

        return train(target, params, wait=wait, **options)

    def widget(self, poll: float = 0.5) -> StudyWidget:  # type: ignore[override]
        """A ``kfnb.widgets.StudyWidget`` following this study."""
        from ..widgets import StudyWidget

        return StudyWidget(self, poll=poll)


def _stamp(value: float | None) -> Any:
    import pandas as pd

    return pd.NaT if value is None else pd.to_datetime(value, unit="s")
