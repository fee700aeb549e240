"""A run as static HTML (no widget, no kernel needed to show it): header, DAG, step table,
metrics and their curves. What a saved notebook shows when it is opened without a kernel."""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence

from ..format import colors, elapsed, took
from ..format import value as fmt_value
from ..tracking import Metric, Run
from .dag import Edge, dag_svg
from .plot import line_plot

Series = dict[str, list[tuple[int, float]]]


def series_of(metrics: Iterable[Metric]) -> Series:
    """Metric name -> its ``(step, value)`` points, for values logged with a step index."""
    out: Series = {}
    for m in metrics:
        if m.step is not None:
            out.setdefault(m.name, []).append((int(m.step), float(m.value)))
    for points in out.values():
        points.sort(key=lambda p: p[0])
    return out


def status_badge(status: str) -> str:
    fill, ink = colors(status)
    return (
        f'<span class="kfnb-status kfnb-status-{status}" style="background:{fill};'
        f'color:{ink};padding:1px 6px;border-radius:4px;font-size:90%">{status}</span>'
    )


def header_html(run: Run, now: float | None = None) -> str:
    return (
        f'<div class="kfnb-run-header"><b>{html.escape(run.name)}</b> &nbsp;run '
        f"<code>{html.escape(run.id)}</code> &nbsp;{status_badge(run.status)} &nbsp;"
        f'<span class="kfnb-elapsed">{took(run, now)}</span> &nbsp;<span class="kfnb-backend">'
        f"{html.escape(run.backend)}</span></div>"
    )


def steps_table_html(run: Run, now: float | None = None) -> str:
    rows = []
    for s in run.steps:
        note = f"from {s.cached_from}" if s.cached_from else ""
        if s.status == "FAILED" and s.error:
            note = str(s.error.get("message") or "")
        rows.append(
            f'<tr class="kfnb-step-row" data-step="{html.escape(s.name)}">'
            f"<td>{html.escape(s.name)}</td><td>{status_badge(s.status)}</td>"
            f"<td>{elapsed(s.started_at, s.finished_at, now)}</td>"
            f"<td>{html.escape(note)}</td></tr>"
        )
    return (
        '<table class="kfnb-steps"><thead><tr><th>step</th><th>status</th><th>time</th>'
        f"<th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def metrics_table_html(metrics: Mapping[str, float]) -> str:
    if not metrics:
        return ""
    rows = "".join(
        f'<tr data-metric="{html.escape(k)}"><td>{html.escape(k)}</td><td>{fmt_value(v)}</td></tr>'
        for k, v in metrics.items()
    )
    return (
        '<table class="kfnb-metrics"><thead><tr><th>metric</th><th>value</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def plots_html(series: Series) -> str:
    return "".join(
        f'<div class="kfnb-plot-box" style="display:inline-block">{line_plot(points, name)}</div>'
        for name, points in series.items()
    )


def run_html(
    run: Run, edges: Sequence[Edge] = (), series: Series | None = None, now: float | None = None
) -> str:
    """The whole run as one HTML fragment."""
    now = time.time() if now is None else now
    parts = [header_html(run, now)]
    if run.remote and run.remote.get("url"):
        parts.append(
            f'<div><a href="{html.escape(str(run.remote["url"]))}" target="_blank" '
            'rel="noopener">Open in the KFP UI</a></div>'
        )
    parts += [
        f'<div class="kfnb-dag-box">{dag_svg(run, edges, now)}</div>',
        steps_table_html(run, now),
        metrics_table_html(run.metrics),
        plots_html(series or {}),
    ]
    return f'<div class="kfnb-run-snapshot" data-run="{html.escape(run.id)}">{"".join(parts)}</div>'
