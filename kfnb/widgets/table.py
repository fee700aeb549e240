"""``RunsTable``: recent runs side by side (parameters and latest metrics as columns), sortable,
with a plot of one metric across the runs picked. ``kfnb.runs()`` returns one."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..format import elapsed, timestamp
from ..format import value as fmt_value
from ..settings import Settings
from ..tracking import Run, Store
from .plot import bar_plot
from .snapshot import status_badge

BASE = ["id", "started", "status", "duration", "backend"]


def rows_of(runs: Sequence[Run]) -> tuple[list[dict[str, Any]], list[str]]:
    """One dict per run (raw values: ``started`` a timestamp, ``duration`` seconds) and the
    columns: the base ones, ``param.<name>`` for each parameter, ``metric.<name>`` each metric."""
    params: dict[str, None] = {}
    metrics: dict[str, None] = {}
    rows = []
    for r in runs:
        start = r.started_at or r.created_at
        end = r.finished_at if r.finished_at is not None else (None if not r.done else start)
        row: dict[str, Any] = {
            "id": r.id,
            "started": r.created_at,
            "status": r.status,
            "duration": None if end is None else end - start,
            "backend": r.backend,
        }
        for k, v in r.params.items():
            params[k] = None
            row[f"param.{k}"] = v
        for k, m in r.metrics.items():
            metrics[k] = None
            row[f"metric.{k}"] = m
        rows.append(row)
    return rows, BASE + [f"param.{k}" for k in params] + [f"metric.{k}" for k in metrics]


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    """Rows sorted by column ``key``; missing values (and NaN) always last."""

    def rank(row: dict[str, Any]) -> tuple[int, Any]:
        v = row.get(key)
        if isinstance(v, bool):
            return (0, float(v))
        if isinstance(v, (int, float)):
            return (0, float(v)) if math.isfinite(v) else (2, 0.0)
        return (2, "") if v is None else (1, str(v))

    present = [r for r in rows if rank(r)[0] != 2]
    missing = [r for r in rows if rank(r)[0] == 2]
    nums = sorted([r for r in present if rank(r)[0] == 0], key=rank, reverse=descending)
    texts = sorted([r for r in present if rank(r)[0] == 1], key=rank, reverse=descending)
    return nums + texts + missing


def cell_text(key: str, value: Any, row: dict[str, Any]) -> str:
    if value is None:
        return ""
    if key == "started":
        return timestamp(value)
    if key == "duration":
        return elapsed(0.0, float(value))
    return fmt_value(value)


def label(key: str) -> str:
    return key.split(".", 1)[1] if "." in key and key.split(".")[0] in ("param", "metric") else key


def text_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """The table as aligned plain text (``repr`` outside a notebook)."""
    cells = [[label(c) for c in columns]] + [
        [cell_text(c, r.get(c), r) for c in columns] for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells
    )


def html_table(
    rows: list[dict[str, Any]], columns: list[str], sort_key: str = "", descending: bool = True
) -> str:
    head = []
    for c in columns:
        kind = c.split(".", 1)[0] if c.startswith(("param.", "metric.")) else "run"
        arrow = (" ▼" if descending else " ▲") if c == sort_key else ""
        head.append(
            f'<th class="kfnb-col-{kind}" data-column="{html.escape(c)}">'
            f"{html.escape(label(c))}{arrow}</th>"
        )
    body = []
    for r in rows:
        tds = []
        for c in columns:
            v = r.get(c)
            text = status_badge(str(v)) if c == "status" else html.escape(cell_text(c, v, r))
            if c == "id":
                text = f"<code>{text}</code>"
            tds.append(f'<td data-column="{html.escape(c)}">{text}</td>')
        body.append(
            f'<tr class="kfnb-run-row" data-run="{html.escape(r["id"])}">{"".join(tds)}</tr>'
        )
    return (
        '<table class="kfnb-runs"><thead><tr>'
        + "".join(head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


class RunsTable(widgets.VBox):
    """Recent runs (of ``notebook`` when given), newest first: ``RunsTable(notebook, store,
    limit)``."""

    def __init__(
        self,
        notebook: str | Path | None = None,
        store: Store | None = None,
        limit: int = 50,
        **kwargs: Any,
    ) -> None:
        self.store = store if store is not None else Settings.load().store()
        self.notebook = str(Path(notebook).resolve()) if notebook is not None else None
        self.limit = limit
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = list(BASE)
        self.plot_data: list[tuple[str, float]] = []
        self.plot_metric: str | None = None
        self.sort_by = widgets.Dropdown(
            options=[(c, c) for c in BASE], value="started", description="Sort by"
        )
        self.sort_by.add_class("kfnb-RunsTable-sort")
        self.descending = widgets.ToggleButton(
            value=True, description="descending", icon="sort-amount-desc"
        )
        self.descending.add_class("kfnb-RunsTable-order")
        self.table = widgets.HTML()
        self.table.add_class("kfnb-RunsTable-table")
        self.select = widgets.SelectMultiple(options=[], description="Runs", rows=6)
        self.select.add_class("kfnb-RunsTable-select")
        self.metric = widgets.Dropdown(options=[], description="Metric")
        self.metric.add_class("kfnb-RunsTable-metric")
        self.plot_button = widgets.Button(description="Plot", icon="bar-chart")
        self.plot_button.add_class("kfnb-RunsTable-plot-button")
        self.plot_button.on_click(lambda _b: self.plot())
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.add_class("kfnb-RunsTable-refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.plot_html = widgets.HTML()
        self.plot_html.add_class("kfnb-RunsTable-plot")
        self.sort_by.observe(lambda _c: self._render(), names="value")
        self.descending.observe(self._on_order, names="value")
        super().__init__(
            children=[
                widgets.HBox([self.sort_by, self.descending, self.refresh_button]),
                self.table,
                widgets.HBox([self.select, widgets.VBox([self.metric, self.plot_button])]),
                self.plot_html,
            ],
            **kwargs,
        )
        self.add_class("kfnb-RunsTable")
        self.refresh()

    def refresh(self) -> None:
        """Read the runs again."""
        runs = self.store.list_runs(notebook=self.notebook, limit=self.limit)
        self.rows, self.columns = rows_of(runs)
        key = self.sort_by.value if self.sort_by.value in self.columns else "started"
        self.sort_by.options = [
            (label(c) + (" (param)" if c.startswith("param.") else ""), c) for c in self.columns
        ]
        self.sort_by.value = key
        chosen = [i for i in self.select.value if any(r["id"] == i for r in self.rows)]
        self.select.options = [(f"{r['id']}  {r['status'].lower()}", r["id"]) for r in self.rows]
        self.select.value = tuple(chosen)
        names = [c.split(".", 1)[1] for c in self.columns if c.startswith("metric.")]
        current = self.metric.value
        self.metric.options = names
        if current in names:
            self.metric.value = current
        self._render()

    def _on_order(self, change: dict[str, Any]) -> None:
        self.descending.description = "descending" if change["new"] else "ascending"
        self.descending.icon = "sort-amount-desc" if change["new"] else "sort-amount-asc"
        self._render()

    def sorted_rows(self) -> list[dict[str, Any]]:
        return sort_rows(self.rows, self.sort_by.value or "started", self.descending.value)

    def _render(self) -> None:
        self.table.value = html_table(
            self.sorted_rows(), self.columns, self.sort_by.value or "", self.descending.value
        )

    def sort(self, column: str, descending: bool = True) -> None:
        """Sort by ``column`` (``id``, ``started``..., a parameter or metric name)."""
        key = (
            column
            if column in self.columns
            else next((c for c in self.columns if label(c) == column), column)
        )
        if key not in self.columns:
            known = ", ".join(map(label, self.columns))
            raise ValueError(f"no column {column!r}; columns: {known}")
        self.descending.value = descending
        self.sort_by.value = key
        self._render()

    def plot(self, metric: str | None = None, runs: Sequence[str] | None = None) -> None:
        """Plot ``metric`` (default: the one chosen) across the runs picked (default: the
        selection; all rows when none is selected)."""
        name = metric or self.metric.value
        if runs is not None:
            self.select.value = tuple(runs)
        if not name:
            self.plot_html.value = "<i>no metric to plot</i>"
            return
        ids = list(self.select.value) or [r["id"] for r in self.sorted_rows()]
        by_id = {r["id"]: r for r in self.rows}
        self.plot_metric = name
        self.plot_data = [
            (i, float(by_id[i][f"metric.{name}"]))
            for i in ids
            if i in by_id and by_id[i].get(f"metric.{name}") is not None
        ]
        self.plot_html.value = bar_plot(self.plot_data, name)

    def state(self) -> dict[str, Any]:
        return {
            "rows": self.sorted_rows(),
            "columns": list(self.columns),
            "sort": (self.sort_by.value, self.descending.value),
            "selected": list(self.select.value),
            "plot": {"metric": self.plot_metric, "data": list(self.plot_data)},
        }

    def __repr__(self) -> str:
        return text_table(self.sorted_rows(), self.columns)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/html"] = html_table(
            self.sorted_rows(), self.columns, self.sort_by.value or "", self.descending.value
        )
        data["text/plain"] = repr(self)
        return data
