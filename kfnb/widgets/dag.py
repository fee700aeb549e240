"""The pipeline DAG of a run as an SVG picture, built as a string (no widget, no JavaScript).

Layout as the side panel's ``dag.ts`` does it, simplified: a step's layer is the longest path to
it from a root (layers run top to bottom), steps keep notebook order within a layer, and each
layer is centred. Nodes are coloured by step status; a cached step says so. The edges are the
run's own (``pipeline_edges``: the pipeline stored with the run), never the notebook's current
state: an edited notebook leaves an old run's picture as it ran.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence

from ..format import STATUS_COLORS, colors, elapsed
from ..tracking import Run

__all__ = ["STATUS_COLORS", "Edge", "dag_svg", "layers", "pipeline_edges", "positions"]

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 42, 24, 30, 8

Edge = tuple[str, str]


def layers(names: Sequence[str], edges: Iterable[Edge]) -> dict[str, int]:
    """Step -> layer: the longest path to it from a step with no upstream (a root is 0)."""
    ups: dict[str, list[str]] = {n: [] for n in names}
    for src, dst in edges:
        if src in ups and dst in ups and src != dst:
            ups[dst].append(src)
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(name: str) -> int:
        if name in layer:
            return layer[name]
        if name in visiting:  # a cycle (a broken pipeline): cut it here
            return 0
        visiting.add(name)
        layer[name] = max((depth(u) + 1 for u in ups[name]), default=0)
        visiting.discard(name)
        return layer[name]

    for n in names:
        depth(n)
    return layer


def positions(
    names: Sequence[str], edges: Iterable[Edge]
) -> tuple[dict[str, tuple[float, float]], float, float]:
    """Top-left corner of each node, and the picture's width and height."""
    layer = layers(names, edges)
    rows: dict[int, list[str]] = {}
    for n in names:
        rows.setdefault(layer[n], []).append(n)
    widest = max((len(r) for r in rows.values()), default=1)
    width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X
    height = PAD * 2 + len(rows) * NODE_H + max(len(rows) - 1, 0) * GAP_Y
    pos: dict[str, tuple[float, float]] = {}
    for i, row in sorted(rows.items()):
        row_w = len(row) * NODE_W + (len(row) - 1) * GAP_X
        x0 = (width - row_w) / 2
        for j, n in enumerate(row):
            pos[n] = (x0 + j * (NODE_W + GAP_X), PAD + i * (NODE_H + GAP_Y))
    return pos, width, max(height, PAD * 2 + NODE_H)


def _clip(text: str, n: int = 20) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def dag_svg(run: Run, edges: Iterable[Edge] = (), now: float | None = None) -> str:
    """The run's steps as an SVG DAG: one coloured node per step (status, elapsed time)."""
    edges = list(edges)
    names = [s.name for s in run.steps]
    pos, width, height = positions(names, edges)
    now = time.time() if now is None else now
    out = [
        f'<svg class="kfnb-dag" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        'style="max-width:100%;height:auto" font-family="sans-serif" font-size="12">',
        '<defs><marker id="kfnb-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="6" markerHeight="6" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#757575"/></marker></defs>',
    ]
    for src, dst in edges:
        if src not in pos or dst not in pos:
            continue
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        ax, ay, bx, by = x1 + NODE_W / 2, y1 + NODE_H, x2 + NODE_W / 2, y2
        mid = (ay + by) / 2
        out.append(
            f'<path class="kfnb-dag-edge" data-source="{html.escape(src)}" '
            f'data-target="{html.escape(dst)}" d="M{ax:.1f},{ay:.1f} C{ax:.1f},{mid:.1f} '
            f'{bx:.1f},{mid:.1f} {bx:.1f},{by - 1:.1f}" fill="none" stroke="#757575" '
            'stroke-width="1.5" marker-end="url(#kfnb-arrow)"/>'
        )
    for s in run.steps:
        x, y = pos[s.name]
        fill, ink = colors(s.status)
        took = elapsed(s.started_at, s.finished_at, now)
        detail = "cached" if s.status == "CACHED" else s.status.lower()
        if took and s.status != "CACHED":
            detail += f" · {took}"
        if s.attempt > 1:
            detail += f" · try {s.attempt}"
        name = html.escape(s.name)
        out.append(
            f'<g class="kfnb-dag-node kfnb-step-{s.status}" data-step="{name}" '
            f'data-status="{s.status}"><title>{name}: {s.status}'
            f"{' from ' + html.escape(s.cached_from) if s.cached_from else ''}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="6" '
            f'fill="{fill}" stroke="{"#0d47a1" if s.status == "RUNNING" else "none"}"/>'
            f'<text x="{x + NODE_W / 2:.1f}" y="{y + 17:.1f}" text-anchor="middle" '
            f'fill="{ink}" font-weight="bold">{html.escape(_clip(s.name))}</text>'
            f'<text class="kfnb-dag-detail" x="{x + NODE_W / 2:.1f}" y="{y + 33:.1f}" '
            f'text-anchor="middle" fill="{ink}" font-size="11">{html.escape(detail)}</text></g>'
        )
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
