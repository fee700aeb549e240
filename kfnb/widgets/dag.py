"""The pipeline DAG of a run as an SVG picture, built as a string (no widget, no JavaScript).

Drawn from ``kfnb.layout.layout`` of the pipeline stored with the run, the layout the server
serves and the side panel draws: the same rows, order, edge paths and labels everywhere. Nodes
are coloured by step status (a cached step says so); each node group carries ``data-step``,
``data-status``, ``data-layer`` and ``data-order``. Edges are S-curves through their waypoints,
dashed when no data flows on them (explicit ``prev`` edges), labelled with their variables. The
picture is the run as it ran: an edited notebook leaves an old run's picture alone. A run
recorded before runs kept their pipeline is drawn from its steps (and any ``edges`` given).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..format import STATUS_COLORS, colors, elapsed
from ..layout import CHAR_W, label_text, layout
from ..tracking import Run, StepRun

__all__ = ["STATUS_COLORS", "Edge", "dag_svg", "pipeline_edges", "run_pipeline"]

Edge = tuple[str, str]
Point = Sequence[float]


def _clip(text: str, n: int = 20) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _esc(text: Any) -> str:
    return html.escape(str(text))


def run_pipeline(run: Run, edges: Iterable[Edge] = ()) -> dict[str, Any]:
    """The pipeline view to draw a run from: the one stored with it (its steps and edges as it
    ran), with any step the run has that the view lacks (and any ``edges`` given) added. A run
    without a stored pipeline gets a view of its steps in recorded order."""
    stored: Mapping[str, Any] = run.pipeline or {}
    steps = [s for s in stored.get("steps") or [] if isinstance(s, Mapping)]
    known = {s.get("name") for s in steps}
    steps += [
        {"name": s.name, "cells": [], "after": [], "resources": {}}
        for s in run.steps
        if s.name not in known
    ]
    extra = [{"source": a, "target": b, "variables": []} for a, b in edges]
    return {
        **stored,
        "steps": steps,
        "edges": [*(stored.get("edges") or []), *extra],
        "order": list(stored.get("order") or []),
    }


def _path(points: Sequence[Point]) -> str:
    """Straight where x stays, else a vertical S-curve (control points at half the height)."""
    (x, y), *rest = points
    d = f"M{x:.1f},{y:.1f}"
    for nx, ny in rest:
        if nx == x:
            d += f" L{nx:.1f},{ny:.1f}"
        else:
            mid = (y + ny) / 2
            d += f" C{x:.1f},{mid:.1f} {nx:.1f},{mid:.1f} {nx:.1f},{ny:.1f}"
        x, y = nx, ny
    return d


def _edge_svg(edge: Mapping[str, Any]) -> str:
    source, target, variables = _esc(edge["source"]), _esc(edge["target"]), edge["variables"]
    what = _esc(", ".join(variables)) if variables else "(prev:, no data)"
    title = f"{source} → {target}{': ' if variables else ' '}{what}"
    dash = "" if variables else ' stroke-dasharray="5 4"'
    return (
        f'<path class="kfnb-dag-edge" data-source="{source}" data-target="{target}" '
        f'd="{_path(edge["points"])}" fill="none" stroke="#757575" stroke-width="1.5"{dash} '
        f'marker-end="url(#kfnb-arrow)"><title>{title}</title></path>'
    )


def _label_svg(edge: Mapping[str, Any]) -> str:
    x, y = edge["label"]
    full = ", ".join(edge["variables"])
    text = label_text(edge["variables"])
    w = len(text) * CHAR_W + 8
    return (
        f'<g class="kfnb-dag-label" data-source="{_esc(edge["source"])}" '
        f'data-target="{_esc(edge["target"])}"><title>{_esc(full)}</title>'
        f'<rect x="{x - w / 2:.1f}" y="{y - 8:.1f}" width="{w:.1f}" height="16" rx="8" '
        f'fill="#fff" stroke="#bdbdbd"/><text x="{x:.1f}" y="{y + 4:.1f}" '
        f'text-anchor="middle" fill="#424242" font-size="11">{_esc(text)}</text></g>'
    )


def _node_svg(node: Mapping[str, Any], step: StepRun | None, w: float, h: float, now: float) -> str:
    status = step.status if step else "PENDING"
    fill, ink = colors(status)
    detail = "cached" if status == "CACHED" else status.lower()
    if step:
        took = elapsed(step.started_at, step.finished_at, now)
        if took and status != "CACHED":
            detail += f" · {took}"
        if step.attempt > 1:
            detail += f" · try {step.attempt}"
    name = _esc(node["step"])
    tip = [f"{name}: {status}"]
    if step and step.cached_from:
        tip[0] += f" from {_esc(step.cached_from)}"
    tip += [node["caption"], *(_esc(b["title"]) for b in node["badges"])]
    x, y = node["x"] - w / 2, node["y"] - h / 2
    return (
        f'<g class="kfnb-dag-node kfnb-step-{status}" data-step="{name}" '
        f'data-status="{status}" data-layer="{node["layer"]}" data-order="{node["order"]}">'
        f"<title>{chr(10).join(tip)}</title>"
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:g}" height="{h:g}" rx="6" '
        f'fill="{fill}" stroke="{"#0d47a1" if status == "RUNNING" else "none"}"/>'
        f'<text x="{node["x"]:.1f}" y="{y + 17:.1f}" text-anchor="middle" '
        f'fill="{ink}" font-weight="bold">{_esc(_clip(node["step"]))}</text>'
        f'<text class="kfnb-dag-detail" x="{node["x"]:.1f}" y="{y + 33:.1f}" '
        f'text-anchor="middle" fill="{ink}" font-size="11">{_esc(detail)}</text></g>'
    )


def dag_svg(run: Run, edges: Iterable[Edge] = (), now: float | None = None) -> str:
    """The run's steps as an SVG DAG: one coloured node per step (status, elapsed time), laid
    out by ``kfnb.layout`` from the pipeline stored with the run (``edges`` adds arrows, for a
    run recorded without its pipeline)."""
    placed = layout(run_pipeline(run, edges))
    now = time.time() if now is None else now
    width, height = placed["width"], placed["height"]
    w, h = placed["node_width"], placed["node_height"]
    by_name = {s.name: s for s in run.steps}
    out = [
        f'<svg class="kfnb-dag" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:g} {height:g}" '
        'style="max-width:100%;height:auto" font-family="sans-serif" font-size="12">',
        '<defs><marker id="kfnb-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="6" markerHeight="6" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#757575"/></marker></defs>',
    ]
    out += [_edge_svg(e) for e in placed["edges"]]
    out += [_node_svg(n, by_name.get(n["step"]), w, h, now) for n in placed["nodes"]]
    out += [_label_svg(e) for e in placed["edges"] if e["label"] is not None]
    out.append("</svg>")
    return "".join(out)


def pipeline_edges(run: Run) -> list[Edge]:
    """The edges between the run's steps, from the pipeline stored with the run (as it ran,
    whatever the notebook holds now). A run recorded before runs kept their pipeline has none:
    its steps are then drawn side by side in their recorded order, no arrows."""
    view = run.pipeline
    if view is None:
        return []
    names = {s.name for s in run.steps}
    found = []
    for edge in view.get("edges") or []:
        source, target = str(edge.get("source")), str(edge.get("target"))
        if source in names and target in names:
            found.append((source, target))
    return found
