"""Tiny SVG plots built as strings: a metric's curve over its step index, a metric across runs."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

LINE = "#1e88e5"
AXIS = "#9e9e9e"


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _finite(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def line_plot(
    points: Sequence[tuple[float, float]], title: str = "", width: int = 240, height: int = 120
) -> str:
    """A line through ``(x, y)`` points (sorted by x), with the y range and the last value."""
    pts = sorted(_finite(points))
    left, right, top, bottom = 44, 8, 18, 18
    w, h = width - left - right, height - top - bottom
    out = [
        f'<svg class="kfnb-plot kfnb-line-plot" data-title="{html.escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="10">',
        f'<text x="{left}" y="12" font-weight="bold">{html.escape(title)}'
        f"{' = ' + _fmt(pts[-1][1]) if pts else ''}</text>",
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="{AXIS}"/>',
    ]
    if pts:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        sx = w / (x1 - x0) if x1 > x0 else 0.0
        sy = h / (y1 - y0) if y1 > y0 else 0.0

        def at(x: float, y: float) -> str:
            px = left + ((x - x0) * sx if sx else w / 2)
            py = top + h - ((y - y0) * sy if sy else h / 2)
            return f"{px:.1f},{py:.1f}"

        coords = " ".join(at(x, y) for x, y in pts)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{LINE}" stroke-width="1.5"/>')
        if len(pts) == 1:
            cx, cy = at(*pts[0]).split(",")
            out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{LINE}"/>')
        out.append(
            f'<text x="{left - 3}" y="{top + 8}" text-anchor="end">{_fmt(y1)}</text>'
            f'<text x="{left - 3}" y="{top + h}" text-anchor="end">{_fmt(y0)}</text>'
            f'<text x="{left}" y="{height - 4}">{_fmt(x0)}</text>'
            f'<text x="{left + w}" y="{height - 4}" text-anchor="end">{_fmt(x1)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def bar_plot(
    items: Sequence[tuple[str, float]], title: str = "", width: int = 360, bar_h: int = 18
) -> str:
    """One horizontal bar per ``(label, value)`` (e.g. a metric across runs), value written."""
    left, right, top = 110, 60, 20
    height = top + max(len(items), 1) * (bar_h + 4) + 4
    values = [v for _, v in items if math.isfinite(v)]
    lo, hi = min([0.0, *values]), max([0.0, *values])
    span = (hi - lo) or 1.0
    w = width - left - right
    zero = left + (0 - lo) / span * w
    out = [
        f'<svg class="kfnb-plot kfnb-bar-plot" data-title="{html.escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="4" y="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_h + 4)
        out.append(
            f'<text x="{left - 4}" y="{y + bar_h - 5}" text-anchor="end">'
            f"{html.escape(label)}</text>"
        )
        if math.isfinite(value):
            x = left + (value - lo) / span * w
            a, b = min(x, zero), max(x, zero)
            out.append(
                f'<rect class="kfnb-bar" data-label="{html.escape(label)}" '
                f'data-value="{value!r}" x="{a:.1f}" y="{y}" width="{max(b - a, 1):.1f}" '
                f'height="{bar_h}" fill="{LINE}"/>'
            )
            out.append(f'<text x="{max(x, zero) + 3:.1f}" y="{y + bar_h - 5}">{_fmt(value)}</text>')
        else:
            out.append(f'<text x="{left + 2}" y="{y + bar_h - 5}">{value!r}</text>')
    out.append("</svg>")
    return "".join(out)
