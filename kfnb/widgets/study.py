"""``StudyWidget``: a tuning study, live in a notebook (ipywidgets, no custom JavaScript).

A header (name, id, status, elapsed time, algorithm, objective, the trials per state and the
best trial so far), Stop, "add N trials" and "Run best" (the notebook as a pipeline run with the
best parameters, or the training function, shown live below), a table of the trials updated in
place (state, parameters, objective, duration; a row appears as its trial starts), and the
study plots (``kfnb.tuning.plots``: optimisation history and parallel coordinates), drawn again
only when a trial started, ended or changed state, at most every ``PLOT_EVERY`` seconds.

Everything is read from ``study_view`` (one read per poll, by a ``follow.Follower`` daemon
thread, which stops once the study ended), so a local study and a Katib experiment show alike
and nothing blocks the kernel. ``display()`` shows the widget with a static HTML snapshot and a
text rendering under a display id; when the study ends the snapshot is replaced by the final
one, so a saved notebook shows the result without a kernel (as ``RunWidget`` does).
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import KfnbError
from ..format import elapsed
from ..format import value as fmt_value
from ..tracking import TERMINAL_RUN, Event, Run, Store
from ..tuning.text import study_table
from ..tuning.view import STATES, study_view
from .follow import Follower
from .launcher import error_html
from .live import LiveDisplay
from .snapshot import status_badge

if TYPE_CHECKING:
    from ..settings import Settings
    from ..tuning import Study

PLOT_EVERY = 2.0  # seconds between two drawings of the plots while trials change
BEST_ROW = "#f1f8e9"


# -- the study as HTML and text (pure functions of a study view) ---------------------------
def study_header_html(view: Mapping[str, Any], now: float | None = None) -> str:
    """Name, id, status, time, how it searches; the trials per state; the best so far."""
    study = view.get("study") or {}
    start = view.get("started_at") or view.get("created_at")
    how = " &middot; ".join(
        html.escape(str(x))
        for x in (
            view.get("backend"),
            study.get("algorithm"),
            f"{study.get('objective')} ({study.get('direction', 'minimize')})",
        )
        if x
    )
    counts = view.get("counts") or {}
    budget = study.get("trials")
    done = sum(counts.get(s, 0) for s in ("SUCCEEDED", "PRUNED", "FAILED"))
    tally = " ".join(
        f'<span class="kfnb-study-count" data-state="{s}">{status_badge(s)} {counts[s]}</span>'
        for s in STATES
        if counts.get(s)
    )
    lines = [
        f"<div><b>{html.escape(str(view.get('name')))}</b> &nbsp;study "
        f"<code>{html.escape(str(view.get('id')))}</code> &nbsp;"
        f"{status_badge(str(view.get('status')))} &nbsp;"
        f'<span class="kfnb-elapsed">{elapsed(start, view.get("finished_at"), now)}</span>'
        f' &nbsp;<span class="kfnb-study-how">{how}</span></div>',
        f'<div class="kfnb-study-counts"><span class="kfnb-study-done">{done}/{budget} trials'
        f"</span> &nbsp;{tally}</div>",
        f'<div class="kfnb-study-best">{best_html(view)}</div>',
    ]
    if view.get("error"):
        lines.append(error_html(str(view["error"])))
    return f'<div class="kfnb-study-header">{"".join(lines)}</div>'


def best_html(view: Mapping[str, Any]) -> str:
    best = view.get("best")
    if not best:
        return "<i>no succeeded trial yet</i>"
    params = ", ".join(
        f"{html.escape(k)}=<code>{html.escape(fmt_value(v))}</code>"
        for k, v in (best.get("params") or {}).items()
    )
    return (
        f'best <b class="kfnb-study-best-value">{html.escape(fmt_value(best.get("value")))}</b>'
        f' at trial <span class="kfnb-study-best-trial">{best.get("number")}</span>: {params}'
    )


def param_names(view: Mapping[str, Any]) -> list[str]:
    """The tuned parameters, in the space's order (then any other a trial recorded)."""
    names = list(((view.get("study") or {}).get("space") or {}).keys())
    for trial in view.get("trials") or []:
        names += [n for n in trial.get("params") or {} if n not in names]
    return names


def trials_table_html(
    view: Mapping[str, Any], now: float | None = None, max_height: str | None = "22em"
) -> str:
    """One row per trial (number, state, parameters, objective, duration, why it failed); the
    best row is marked. In a box that stays scrolled to the newest trial."""
    names = param_names(view)
    objective = str((view.get("study") or {}).get("objective") or "objective")
    best_id = (view.get("best") or {}).get("id")
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["#", "state", *names])
    head += f"<th>{html.escape(objective)}</th><th>time</th><th></th>"
    rows = []
    for t in view.get("trials") or []:
        cells = [
            f"<td>{t.get('number')}</td><td>{status_badge(str(t.get('status')))}</td>",
            *(
                f"<td>{html.escape(fmt_value((t.get('params') or {}).get(n, '')))}</td>"
                for n in names
            ),
            f'<td class="kfnb-trial-value">{_value_text(t)}</td>',
            f"<td>{elapsed(t.get('started_at'), t.get('finished_at'), now)}</td>",
            f'<td class="kfnb-trial-note">{_note(t, t.get("id") == best_id)}</td>',
        ]
        style = f' style="background:{BEST_ROW};font-weight:bold"' if t.get("id") == best_id else ""
        rows.append(
            f'<tr class="kfnb-trial-row" data-trial="{t.get("number")}" '
            f'data-status="{html.escape(str(t.get("status")))}"{style}>{"".join(cells)}</tr>'
        )
    table = (
        '<table class="kfnb-trials"><thead><tr>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    if not rows:
        table += "<div><i>no trial started yet</i></div>"
    if max_height is None:
        return table
    # column-reverse keeps the box scrolled to the end (the newest trial) as rows arrive
    return (
        '<div class="kfnb-trials-box" style="display:flex;flex-direction:column-reverse;'
        f'max-height:{max_height};overflow:auto"><div>{table}</div></div>'
    )


def _value_text(trial: Mapping[str, Any]) -> str:
    if trial.get("value") is not None:
        return html.escape(fmt_value(trial["value"]))
    curve = trial.get("intermediate") or []
    if curve:  # a pruned or running trial: its last intermediate value, in grey
        step, last = curve[-1]
        return f'<span style="color:#9e9e9e">{html.escape(fmt_value(last))} @{step}</span>'
    return ""


def _note(trial: Mapping[str, Any], best: bool) -> str:
    if best:
        return "best"
    error = trial.get("error")
    if not error:
        return ""
    text = str(error)
    short = text if len(text) <= 80 else text[:79] + "…"
    return f'<span title="{html.escape(text)}" style="color:#c62828">{html.escape(short)}</span>'


def plots_html(view: Mapping[str, Any]) -> str:
    """The history and the parallel coordinates side by side (a readable note when they
    cannot be drawn, e.g. without matplotlib)."""
    from ..tuning.plots import history_svg, parallel_svg

    try:
        parts = [history_svg(view), parallel_svg(view)]
    except KfnbError as err:  # matplotlib is missing: say which extra brings it
        return error_html(err)
    except Exception as err:  # a plot must never stop the table and header from updating
        return error_html(f"the study plots could not be drawn: {type(err).__name__}: {err}")
    boxes = "".join(f'<div class="kfnb-study-plot-box">{svg}</div>' for svg in parts)
    return (
        f'<div class="kfnb-study-plots" style="display:flex;flex-wrap:wrap;gap:8px">{boxes}</div>'
    )


def study_html(view: Mapping[str, Any], plots: str, now: float | None = None) -> str:
    """The whole study as one static HTML fragment (what a saved notebook shows)."""
    return (
        f'<div class="kfnb-study-snapshot" data-study="{html.escape(str(view.get("id")))}">'
        f"{study_header_html(view, now)}{trials_table_html(view, now, max_height=None)}"
        f"{plots}</div>"
    )


def plot_key(view: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the plots show: each trial's number, state and value (not its running time)."""
    return tuple(
        (t.get("number"), t.get("status"), t.get("value")) for t in view.get("trials") or []
    )


# -- the widget ----------------------------------------------------------------------------
class StudyWidget(LiveDisplay, widgets.VBox):
    """A live view of one study: ``StudyWidget(study, poll=0.5)`` (a ``kfnb.tune`` result, or
    a study id with ``store``/``settings``)."""

    def __init__(
        self,
        study: Study | str,
        poll: float = 0.5,
        *,
        store: Store | None = None,
        settings: Settings | None = None,
        follow: bool = True,
        **kwargs: Any,
    ) -> None:
        self.study: Study = study if not isinstance(study, str) else _attach(study, store, settings)
        self.store = self.study.store
        self.study_id = self.study.id
        self.poll = poll
        self._lock = threading.RLock()
        self.view: dict[str, Any] = study_view(self.store, self.study_id)
        self.plots_key: tuple[Any, ...] | None = None
        self._plots_at = 0.0
        self.plots_drawn = 0  # how many times the plots were drawn (tests, to see no flood)
        self.display_handle: Any = None
        self.best_run: Any = None  # what "Run best" started, and its widget
        self.best_widget: Any = None
        self.follower: Follower | None = None

        self.header = widgets.HTML()
        self.header.add_class("kfnb-StudyWidget-header")
        self.stop_button = widgets.Button(
            description="Stop", icon="stop", button_style="danger", tooltip="Stop this study"
        )
        self.stop_button.add_class("kfnb-StudyWidget-stop")
        self.stop_button.on_click(lambda _b: self.stop())
        self.add_count = widgets.BoundedIntText(
            value=5, min=1, max=100_000, layout=widgets.Layout(width="5.5em")
        )
        self.add_count.add_class("kfnb-StudyWidget-add-count")
        self.add_button = widgets.Button(
            description="Add trials", icon="plus", tooltip="Raise the study's budget"
        )
        self.add_button.add_class("kfnb-StudyWidget-add")
        self.add_button.on_click(lambda _b: self.add_trials())
        notebook = bool(self._target().get("notebook") or self._target().get("pipeline"))
        self.best_button = widgets.Button(
            description="Run best as pipeline" if notebook else "Train with best",
            icon="play",
            button_style="success",
            tooltip="Run once more with the best parameters so far",
            layout=widgets.Layout(width="auto"),
        )
        self.best_button.add_class("kfnb-StudyWidget-run-best")
        self.best_button.on_click(lambda _b: self.run_best())
        self.message = widgets.HTML()
        self.message.add_class("kfnb-StudyWidget-message")
        self.table = widgets.HTML()
        self.table.add_class("kfnb-StudyWidget-trials")
        self.plots = widgets.HTML()
        self.plots.add_class("kfnb-StudyWidget-plots")
        self.output = widgets.Output()
        self.output.add_class("kfnb-StudyWidget-output")
        super().__init__(
            children=[
                self.header,
                widgets.HBox(
                    [self.stop_button, self.add_count, self.add_button, self.best_button],
                    layout=widgets.Layout(align_items="center"),
                ),
                self.message,
                self.table,
                self.plots,
                self.output,
            ],
            **kwargs,
        )
        self.add_class("kfnb-StudyWidget")
        live = follow and self.view["status"] not in TERMINAL_RUN
        # a live study's plots are drawn by the follower's first look, off the main thread
        self._show(self.view, draw=not live)
        if live:
            self.follow()

    def _target(self) -> dict[str, Any]:
        return dict((self.view.get("study") or {}).get("target") or {})

    # --- following -----------------------------------------------------------------------
    def follow(self) -> None:
        """Follow the study from a daemon thread until it ends (again after it resumed)."""
        with self._lock:
            if self.view["status"] in TERMINAL_RUN or (self.follower and self.follower.alive):
                return
            refresh = self.study.refresh if self.view.get("remote") is not None else None
            self.follower = Follower(
                self.store,
                self.study_id,
                self._update,
                poll=self.poll,
                refresh=refresh,
                on_end=self._on_end,
            ).start()

    def close(self) -> None:
        follower = getattr(self, "follower", None)  # None too when __init__ failed early
        if follower is not None:
            follower.stop()
        super().close()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the follower's last update (tests, scripts); the study view."""
        if self.follower is not None:
            self.follower.join(timeout)
        return self.view

    def refresh(self) -> dict[str, Any]:
        """Read the study once more and update every part (the follower does this per poll)."""
        self._update(self.store.get_run(self.study_id), [])
        return self.view

    def _update(self, record: Run, events: list[Event]) -> None:
        self._show(study_view(self.store, self.study_id))

    def _show(self, view: dict[str, Any], draw: bool | None = None) -> None:
        """Show ``view``; the plots are drawn again when its trials changed (``draw``: now, or
        never), at most every ``PLOT_EVERY`` seconds until the study ended."""
        now = time.time()
        ended = view["status"] in TERMINAL_RUN
        key = plot_key(view)
        if draw is None:
            draw = key != self.plots_key and (ended or now - self._plots_at >= PLOT_EVERY)
        plots = plots_html(view) if draw else None  # drawn outside the lock
        with self._lock:
            self.view = view
            self.header.value = study_header_html(view, now)
            self.table.value = trials_table_html(view, now)
            if plots is not None:
                self.plots.value = plots
                self.plots_key, self._plots_at = key, now
                self.plots_drawn += 1
            stopping = view["status"] == "CANCELING"
            self.stop_button.disabled = ended or stopping
            self.stop_button.button_style = "" if ended else "danger"
            self.best_button.disabled = view.get("best") is None

    # --- actions -------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the study (what Stop does): its running trials are cancelled."""
        self.stop_button.disabled = True
        self.message.value = ""
        try:
            self.study.stop()
        except KfnbError as err:
            self.message.value = error_html(err)
            self.stop_button.disabled = False

    def add_trials(self, n: int | None = None) -> None:
        """Raise the budget by ``n`` trials (the box's number); an ended study goes on."""
        count = int(self.add_count.value if n is None else n)
        self.message.value = ""
        try:
            self.study.add_trials(count)
        except KfnbError as err:
            self.message.value = error_html(err)
            return
        self.refresh()
        budget = (self.view.get("study") or {}).get("trials")
        self.message.value = (
            f'<span class="kfnb-study-note">added {count} trial{"s" * (count != 1)}: '
            f"the budget is {budget}</span>"
        )
        self.follow()

    def run_best(self) -> Any:
        """Run the best parameters once more (what Run best does), shown live below; the run,
        or None (the error is shown)."""
        from IPython.display import display

        self.message.value = ""
        try:
            started = self.study.run_best()
        except KfnbError as err:
            self.message.value = error_html(err)
            return None
        self.best_run = started
        if self.best_widget is not None:
            self.best_widget.close()
        self.best_widget = started.widget()
        self.output.clear_output()
        with self.output:
            display(self.best_widget)
        return started

    # --- state and display -------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain state, for tests and scripts."""
        with self._lock:
            view = self.view
            best = view.get("best")
            return {
                "status": view["status"],
                "counts": dict(view["counts"]),
                "budget": (view.get("study") or {}).get("trials"),
                "trials": [
                    (t["number"], t["status"], dict(t["params"]), t["value"])
                    for t in view["trials"]
                ],
                "best": None if best is None else (best["number"], best["value"]),
                "plots_drawn": self.plots_drawn,
                "stop_disabled": self.stop_button.disabled,
                "best_disabled": self.best_button.disabled,
            }

    def snapshot_html(self) -> str:
        """The study as static HTML (header, trials, plots)."""
        with self._lock:
            return study_html(self.view, self.plots.value)

    def static(self) -> tuple[str, str]:
        return study_html(self.view, self.plots.value), "\n".join(study_table(self.view))

    def __repr__(self) -> str:
        return "\n".join(study_table(self.view))


def _attach(study_id: str, store: Store | None, settings: Settings | None) -> Study:
    """The study ``study_id`` (or a unique prefix) in ``store``, with a handle that can stop it."""
    from ..settings import Settings
    from ..tuning import Study, attach_record

    settings = settings if settings is not None else Settings.load()
    store = store if store is not None else settings.store()
    record = store.get_run(store.resolve_id(study_id))
    handle = attach_record(store, record, settings)
    return Study(store, record.id, handle, settings=settings)
