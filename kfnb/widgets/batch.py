"""``BatchWidget``: a parameter sweep, live in a notebook (ipywidgets, no custom JavaScript).

A header (name, id, status, elapsed time; the sets done, running, failed), Cancel, and the
results table filling in as sets end (parameters, status, metrics, time, why a set failed).
Read from ``batch_view`` by a ``follow.Follower`` daemon thread; when the batch ends the static
snapshot beside the widget view is replaced by the final one (``LiveDisplay``)."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..batching.text import batch_table
from ..batching.view import STATES, batch_view, metric_names, param_names
from ..errors import KfnbError
from ..format import elapsed
from ..format import value as fmt_value
from ..tracking import TERMINAL_RUN, Event, Run
from .follow import Follower
from .launcher import error_html
from .live import LiveDisplay
from .snapshot import status_badge

if TYPE_CHECKING:
    from ..batching.sweep import Batch


def batch_header_html(view: Mapping[str, Any], now: float | None = None) -> str:
    counts = view.get("counts") or {}
    total = len(view.get("sets") or [])
    done = sum(counts.get(s, 0) for s in ("SUCCEEDED", "FAILED", "CANCELED"))
    start = view.get("started_at") or view.get("created_at")
    tally = " ".join(
        f'<span class="kfnb-batch-count" data-state="{s}">{status_badge(s)} {counts[s]}</span>'
        for s in STATES
        if counts.get(s)
    )
    lines = [
        f"<div><b>{html.escape(str(view.get('name')))}</b> &nbsp;batch "
        f"<code>{html.escape(str(view.get('id')))}</code> &nbsp;"
        f"{status_badge(str(view.get('status')))} &nbsp;"
        f'<span class="kfnb-elapsed">{elapsed(start, view.get("finished_at"), now)}</span></div>',
        f'<div class="kfnb-batch-counts"><span class="kfnb-batch-done">{done}/{total} sets'
        f"</span> &nbsp;{tally}</div>",
    ]
    if view.get("error"):
        lines.append(error_html(str(view["error"])))
    return f'<div class="kfnb-batch-header">{"".join(lines)}</div>'


def sets_table_html(view: Mapping[str, Any], now: float | None = None) -> str:
    """One row per set: number, state, parameters, metrics, time, error."""
    names, metrics = param_names(dict(view)), metric_names(dict(view))
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["#", "state", *names, *metrics])
    head += "<th>time</th><th></th>"
    rows = []
    for r in view.get("sets") or []:
        error = str(r.get("error") or "")
        short = error if len(error) <= 80 else error[:79] + "…"
        cells = [
            f"<td>{r['set']}</td><td>{status_badge(str(r['status']))}</td>",
            *(f"<td>{html.escape(fmt_value(r['params'].get(n, '')))}</td>" for n in names),
            *(
                f'<td class="kfnb-set-metric">{html.escape(fmt_value(r["metrics"][m]))}</td>'
                if m in r["metrics"]
                else "<td></td>"
                for m in metrics
            ),
            f"<td>{'' if r.get('duration') is None else _secs(r)}</td>",
            f'<td title="{html.escape(error)}" style="color:#c62828">{html.escape(short)}</td>',
        ]
        rows.append(
            f'<tr class="kfnb-set-row" data-set="{r["set"]}" '
            f'data-status="{html.escape(str(r["status"]))}">{"".join(cells)}</tr>'
        )
    return (
        f'<table class="kfnb-batch-sets"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _secs(row: Mapping[str, Any]) -> str:
    return f"{float(row['duration']):.1f}s"


def batch_html(view: Mapping[str, Any], now: float | None = None) -> str:
    return (
        f'<div class="kfnb-batch-snapshot" data-batch="{html.escape(str(view.get("id")))}">'
        f"{batch_header_html(view, now)}{sets_table_html(view, now)}</div>"
    )


class BatchWidget(LiveDisplay, widgets.VBox):
    """A live view of one batch: ``BatchWidget(batch, poll=0.5)`` (a ``kfnb.batch`` result)."""

    def __init__(self, batch: Batch, poll: float = 0.5, *, follow: bool = True, **kw: Any) -> None:
        self.batch = batch
        self.store = batch.store
        self.batch_id = batch.id
        self.poll = poll
        self._lock = threading.RLock()
        self.view: dict[str, Any] = batch_view(self.store, self.batch_id)
        self.display_handle: Any = None
        self.follower: Follower | None = None
        self.header = widgets.HTML()
        self.header.add_class("kfnb-BatchWidget-header")
        self.cancel_button = widgets.Button(
            description="Cancel", icon="stop", button_style="danger", tooltip="Stop this batch"
        )
        self.cancel_button.add_class("kfnb-BatchWidget-cancel")
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.message = widgets.HTML()
        self.table = widgets.HTML()
        self.table.add_class("kfnb-BatchWidget-sets")
        super().__init__(children=[self.header, self.cancel_button, self.message, self.table], **kw)
        self.add_class("kfnb-BatchWidget")
        self._show(self.view)
        if follow and self.view["status"] not in TERMINAL_RUN:
            self.follower = Follower(
                self.store, self.batch_id, self._update, poll=poll, on_end=self._on_end
            ).start()

    def close(self) -> None:
        follower = getattr(self, "follower", None)
        if follower is not None:
            follower.stop()
        super().close()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the follower's last update; the batch view."""
        if self.follower is not None:
            self.follower.join(timeout)
        return self.view

    def refresh(self) -> dict[str, Any]:
        self._show(batch_view(self.store, self.batch_id))
        return self.view

    def _update(self, record: Run, events: list[Event]) -> None:
        self._show(batch_view(self.store, self.batch_id))

    def _show(self, view: dict[str, Any]) -> None:
        now = time.time()
        with self._lock:
            self.view = view
            self.header.value = batch_header_html(view, now)
            self.table.value = sets_table_html(view, now)
            self.cancel_button.disabled = view["status"] in TERMINAL_RUN

    def cancel(self) -> None:
        """Stop the batch (what Cancel does)."""
        self.cancel_button.disabled = True
        try:
            self.batch.cancel()
        except KfnbError as err:
            self.message.value = error_html(err)
            self.cancel_button.disabled = False

    def state(self) -> dict[str, Any]:
        """Plain state, for tests and scripts."""
        with self._lock:
            return {
                "status": self.view["status"],
                "counts": dict(self.view["counts"]),
                "sets": [
                    (r["set"], r["status"], dict(r["params"]), dict(r["metrics"]))
                    for r in self.view["sets"]
                ],
                "cancel_disabled": self.cancel_button.disabled,
            }

    def static(self) -> tuple[str, str]:
        return batch_html(self.view), "\n".join(batch_table(self.view))

    def __repr__(self) -> str:
        return "\n".join(batch_table(self.view))
