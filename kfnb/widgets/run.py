"""``RunWidget``: one pipeline run, live in a notebook (ipywidgets, no custom JavaScript).

A header (name, id, status, elapsed time, backend, Cancel, a link to the KFP UI for remote
runs), a progress bar, the DAG as inline SVG coloured by step status (drawn from the pipeline
stored with the run, as it ran), the log of a chosen step (paged by byte offset through
``RunView.read_log``, like ``kfnb logs``), and the run's metrics with a small curve per metric
logged with a step index. A daemon thread (``follow.Follower``) keeps it up to date; nothing
blocks the kernel.

``display()`` shows it with a static HTML snapshot and the text rendering beside the widget
view, under a display id; when the run ends the snapshot is replaced by the final one, so a
saved notebook opened without a kernel shows how the run ended.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as widgets

from ..backends import RunHandle, RunView
from ..errors import KfnbError
from ..format import run_lines as render
from ..handles import attach
from ..settings import Settings
from ..tracking import TERMINAL_STEP, Event, Run, Store
from .dag import Edge, dag_svg, pipeline_edges
from .follow import Follower
from .live import LiveDisplay
from .snapshot import (
    Series,
    header_html,
    metrics_table_html,
    plots_html,
    run_html,
    series_of,
)

LOG_TAIL = 200_000  # characters of a step log shown (the whole log is in the file)


class RunWidget(LiveDisplay, widgets.VBox):
    """A live view of one run: ``RunWidget(run_or_id, store=None, poll=0.5)``. ``settings``
    (read once by the caller; loaded here when not given) open the run's backend for a remote
    run's refresh and Cancel, and the default store."""

    def __init__(
        self,
        run: str | RunView,
        store: Store | None = None,
        poll: float = 0.5,
        *,
        edges: list[Edge] | None = None,
        follow: bool = True,
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        self._settings = settings
        if isinstance(run, RunView):
            self.store = run.store
            self.run_id = run.id
            self._handle: RunHandle | None = getattr(run, "handle", None)
        else:
            self.store = store if store is not None else self.settings.store()
            self.run_id = self.store.resolve_id(run)
            self._handle = None
        self.view = RunView(self.store, self.run_id)
        self.poll = poll
        self._lock = threading.RLock()
        self.record: Run = self.store.get_run(self.run_id)
        self.edges = list(edges) if edges is not None else pipeline_edges(self.record)
        self.series: Series = {}
        self.display_handle: Any = None
        self._log_step: str | None = None
        self._log_text = ""
        self._log_offset = 0
        self._user_chose_step = False
        self._setting_step = False

        self.header = widgets.HTML()
        self.header.add_class("kfnb-RunWidget-header")
        self.cancel_button = widgets.Button(
            description="Cancel", icon="stop", button_style="danger", tooltip="Stop this run"
        )
        self.cancel_button.add_class("kfnb-RunWidget-cancel")
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.link = widgets.HTML()
        self.link.add_class("kfnb-RunWidget-link")
        self.progress = widgets.IntProgress(
            value=0,
            min=0,
            max=max(len(self.record.steps), 1),
            description="0/0 steps",
            style={"description_width": "initial"},
        )
        self.progress.add_class("kfnb-RunWidget-progress")
        self.dag = widgets.HTML()
        self.dag.add_class("kfnb-RunWidget-dag")
        names = [s.name for s in self.record.steps]
        self.step_select = widgets.Dropdown(
            options=names, value=names[0] if names else None, description="Log of"
        )
        self.step_select.add_class("kfnb-RunWidget-step-select")
        self.step_select.observe(self._on_step_selected, names="value")
        self.log_view = widgets.HTML()
        self.log_view.add_class("kfnb-RunWidget-log")
        self.metrics_html = widgets.HTML()
        self.metrics_html.add_class("kfnb-RunWidget-metrics")
        self.plots = widgets.HTML()
        self.plots.add_class("kfnb-RunWidget-plots")
        super().__init__(
            children=[
                widgets.HBox(
                    [self.header, self.cancel_button, self.link],
                    layout=widgets.Layout(align_items="center"),
                ),
                self.progress,
                self.dag,
                self.step_select,
                self.log_view,
                self.metrics_html,
                self.plots,
            ],
            **kwargs,
        )
        self.add_class("kfnb-RunWidget")
        self._update(self.record, [])
        self.follower: Follower | None = None
        if follow and not self.record.done:
            refresh = None
            if self.record.remote is not None:
                refresh = self._remote_handle().refresh
            self.follower = Follower(
                self.store,
                self.run_id,
                self._update,
                poll=poll,
                refresh=refresh,
                on_end=self._on_end,
            ).start()

    # --- actions -------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.load()
        return self._settings

    def _remote_handle(self) -> RunHandle:
        if self._handle is None:
            self._handle = attach(self.store, self.run_id, self.settings)
        return self._handle

    def cancel(self) -> None:
        """Stop the run (what the Cancel button does)."""
        self.cancel_button.disabled = True
        self._remote_handle().cancel()

    def close(self) -> None:
        if getattr(self, "follower", None) is not None:
            self.follower.stop()  # type: ignore[union-attr]
        super().close()

    def wait(self, timeout: float | None = None) -> Run:
        """Wait for the follower to finish its last update (tests, scripts); the record."""
        if self.follower is not None:
            self.follower.join(timeout)
        return self.record

    # --- updates ---------------------------------------------------------------------------
    def refresh(self) -> Run:
        """Read the run once more and update every part (the follower does this every poll)."""
        record = self.store.get_run(self.run_id)
        self._update(record, [])
        return record

    def _update(self, record: Run, events: list[Event]) -> None:
        now = time.time()
        with self._lock:
            self.record = record
            metrics = self.store.metrics(self.run_id)
            self.series = series_of(metrics)
            done = sum(1 for s in record.steps if s.status in TERMINAL_STEP)
            total = len(record.steps)
            self.header.value = header_html(record, now)
            self.cancel_button.disabled = record.done or record.status == "CANCELING"
            # an ended run has nothing to cancel: a muted button, not a red one
            self.cancel_button.button_style = "" if record.done else "danger"
            url = (record.remote or {}).get("url")
            self.link.value = (
                f'<a href="{html.escape(str(url))}" target="_blank" '
                'rel="noopener">Open in the KFP UI</a>'
                if url
                else ""
            )
            self.progress.max = max(total, 1)
            self.progress.value = done
            self.progress.description = f"{done}/{total} steps"
            self.progress.bar_style = {
                "SUCCEEDED": "success",
                "FAILED": "danger",
                "CANCELED": "warning",
            }.get(record.status, "info")
            self.dag.value = dag_svg(record, self.edges, now)
            self.metrics_html.value = metrics_table_html(record.metrics)
            self.plots.value = plots_html(self.series)
            if not self._user_chose_step:
                running = [s.name for s in record.steps if s.status == "RUNNING"]
                if running and self.step_select.value not in running:
                    self._select(running[0])
            self._read_log()

    def _select(self, name: str) -> None:
        self._setting_step = True
        try:
            self.step_select.value = name
        finally:
            self._setting_step = False

    def _on_step_selected(self, change: dict[str, Any]) -> None:
        with self._lock:
            if not self._setting_step:
                self._user_chose_step = True
            self._read_log()

    def _read_log(self) -> None:
        name = self.step_select.value
        if name != self._log_step:
            self._log_step, self._log_text, self._log_offset = name, "", 0
        if name is not None:
            self._read_new_log(name)
        text = self._log_text[-LOG_TAIL:]
        # column-reverse keeps the box scrolled to the end as lines arrive
        self.log_view.value = (
            '<div class="kfnb-log" style="display:flex;flex-direction:column-reverse;'
            'max-height:16em;overflow:auto;border:1px solid #e0e0e0;background:#fafafa">'
            '<pre style="margin:0;padding:4px;font-size:11px;white-space:pre-wrap">'
            f"{html.escape(text) if text else '<i>(no output yet)</i>'}</pre></div>"
        )

    def _read_new_log(self, step: str) -> None:
        """Append what ``step`` logged since the last look (pages of ``read_log``)."""
        for _ in range(64):  # at most 4 MiB a look; the next poll reads on
            try:
                page = self.view.read_log(step, self._log_offset)
            except KfnbError:  # no such step (any more): nothing to show
                return
            if page.text:
                self._log_text += page.text
                if len(self._log_text) > 4 * LOG_TAIL:
                    self._log_text = self._log_text[-LOG_TAIL:]
            if page.offset == self._log_offset or page.done:
                self._log_offset = page.offset
                return
            self._log_offset = page.offset

    # --- state and display -------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain state, for tests and scripts."""
        with self._lock:
            r = self.record
            return {
                "status": r.status,
                "steps": {s.name: s.status for s in r.steps},
                "progress": (self.progress.value, len(r.steps)),
                "metrics": dict(r.metrics),
                "series": {k: list(v) for k, v in self.series.items()},
                "log_step": self.step_select.value,
                "log": self._log_text,
                "cancel_disabled": self.cancel_button.disabled,
            }

    def snapshot_html(self) -> str:
        """The run as static HTML (DAG, step table, metrics)."""
        with self._lock:
            return run_html(self.record, self.edges, self.series)

    def static(self) -> tuple[str, str]:
        return run_html(self.record, self.edges, self.series), "\n".join(render(self.record))

    def __repr__(self) -> str:
        return "\n".join(render(self.record))
