"""Where to draw a pipeline: the one DAG layout every surface draws (REST ``Layout``).

The server computes it whenever it serves a pipeline (never stored); the side panel and the
notebook widgets draw what it says, so one pipeline looks the same everywhere. It is a
Sugiyama layout sized for notebooks (tens of steps), deterministic (the same view gives the
same layout, byte for byte):

1. *Edges*: the view's edges plus any ``after`` link they lack (variables merged); an edge with
   no variables is an explicit ``prev`` edge (drawn dashed). A cycle (a broken stored view) is
   cut by turning an edge around, so it never stops the picture.
2. *Rows*: steps in topological order (ties by ``order``, then notebook order), each in the
   first row below all its upstream steps that has room: a row holds at most ``MAX_ROW``
   steps, so a wide fan-out wraps onto extra rows and the steps below move down (list
   scheduling, as Coffman-Graham; a layer's steps with the longest way down go first).
3. *Waypoints*: an edge spanning several rows gets a waypoint in each row between (as wide as
   its label, or narrow), so it bends around the nodes there.
4. *Order*: rows start in notebook order with the waypoints spread between the row's steps
   (so the edges into a wrapped fan-out pass between its first row's steps instead of around
   them); then barycentre sweeps down and up plus adjacent swaps, several rounds; the order
   with the fewest crossings wins.
5. *x*: each row is pulled toward the median of its neighbours' positions, alternately from
   above and below, keeping the gaps (a weighted isotonic regression per row, exact).
6. *Ports, labels*: edges leave (enter) a node spread along its bottom (top) side, ordered by
   where they go; each variables label goes where it covers no node and no other label.
"""

from __future__ import annotations

import heapq
import json
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from typing import Any, overload

__all__ = [
    "CHAR_W",
    "LABEL_H",
    "MAX_ROW",
    "NODE_H",
    "NODE_H_TALL",
    "NODE_W",
    "along",
    "badges",
    "caption",
    "label_text",
    "layout",
    "with_layout",
]

NODE_W = 150.0
NODE_H = 44.0
NODE_H_TALL = 58.0  # when some step's badges do not fit beside its caption
WAYPOINT_W = 14.0
GAP_X = 22.0
GAP_Y = 38.0
PAD = 12.0
CHAR_W = 6.3  # average width of an 11px UI font character
LABEL_CHARS = 22
LABEL_H = 18.0
MAX_ROW = 3
ROUNDS = 4  # crossing-reduction rounds (each: a sweep down and a sweep up)
X_ROUNDS = 4  # coordinate rounds (each: a pass down and a pass up)

Point = tuple[float, float]


@dataclass
class _Edge:
    source: str
    target: str
    variables: list[str]
    turned: bool = False  # cut from a cycle: laid out from target down to source
    chain: list[str] = field(default_factory=list)  # node ids, top row to bottom row

    @property
    def upper(self) -> str:
        return self.target if self.turned else self.source

    @property
    def lower(self) -> str:
        return self.source if self.turned else self.target


@dataclass
class _Node:
    id: str
    step: bool  # a step, or a waypoint of a long edge
    width: float
    row: int
    x: float = 0.0


# -- what a node says ---------------------------------------------------------------------------
def caption(cells: Iterable[Any]) -> str:
    """``cells 3-4``, ``cell 7``, ``no cells`` (notebook indices, as ``kfnb describe``)."""
    found = [c for c in cells if isinstance(c, int)]
    if not found:
        return "no cells"
    first, last = min(found), max(found)
    return f"cell {first}" if first == last else f"cells {first}-{last}"


def badges(resources: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """A step's resource badges: GPUs, CPUs, memory, other resources (by their short name)."""
    out = []
    for name, raw in resources.items() if isinstance(resources, Mapping) else ():
        value = str(raw)
        if name == "nvidia.com/gpu" or name.endswith("/gpu"):
            out.append({"text": f"GPU {value}", "kind": "gpu", "title": f"{name}: {value}"})
        elif name == "cpu":
            out.append({"text": f"CPU {value}", "kind": "cpu", "title": f"cpu: {value}"})
        elif name == "memory":
            out.append({"text": value, "kind": "memory", "title": f"memory: {value}"})
        else:
            short = name.split("/")[-1] or name
            out.append({"text": f"{short} {value}", "kind": "other", "title": f"{name}: {value}"})
    return out


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "…"


def label_text(variables: Sequence[str]) -> str:
    """An edge's label: its variables, cut to ``LABEL_CHARS`` characters."""
    return _truncate(", ".join(variables), LABEL_CHARS)


def _label_width(variables: Sequence[str]) -> float:
    return len(label_text(variables)) * CHAR_W + 8


def _tall(step: Mapping[str, Any]) -> bool:
    found = badges(step.get("resources"))
    if not found:
        return False
    used = len(caption(step.get("cells") or [])) * CHAR_W + 6
    used += sum(len(b["text"]) * CHAR_W + 10 + 4 for b in found)
    return used > NODE_W - 20


# -- the graph ----------------------------------------------------------------------------------
def _steps(view: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for step in view.get("steps") or []:
        if isinstance(step, Mapping) and isinstance(step.get("name"), str):
            found.setdefault(step["name"], step)
    return list(found.values())


def _edges(view: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]) -> list[_Edge]:
    """The view's edges between known steps, plus ``after`` links they lack (merged)."""
    known = {s["name"] for s in steps}
    found: dict[tuple[str, str], _Edge] = {}

    def add(source: Any, target: Any, variables: Iterable[Any]) -> None:
        source, target = str(source), str(target)
        if source not in known or target not in known or source == target:
            return
        edge = found.setdefault((source, target), _Edge(source, target, []))
        for v in variables:
            if str(v) not in edge.variables:
                edge.variables.append(str(v))

    for e in view.get("edges") or []:
        if isinstance(e, Mapping):
            variables = e.get("variables")
            add(e.get("source"), e.get("target"), variables if isinstance(variables, list) else [])
    for step in steps:
        after = step.get("after")
        for up in after if isinstance(after, list) else []:
            add(up, step["name"], [])
    return list(found.values())


def _topological(
    names: Sequence[str], edges: Sequence[_Edge], rank: Mapping[str, int]
) -> list[str]:
    """Kahn's order, ties by rank; a cycle is cut at its first step by turning its edges in."""
    indegree = dict.fromkeys(names, 0)
    outs: dict[str, list[_Edge]] = {n: [] for n in names}
    ins: dict[str, list[_Edge]] = {n: [] for n in names}
    for e in edges:
        indegree[e.target] += 1
        outs[e.source].append(e)
        ins[e.target].append(e)
    ready = [(rank[n], n) for n in names if indegree[n] == 0]
    heapq.heapify(ready)
    done: list[str] = []
    seen: set[str] = set()
    while len(done) < len(names):
        if not ready:  # a cycle: cut it at the first step left
            name = min((n for n in names if n not in seen), key=rank.__getitem__)
            for e in ins[name]:
                if e.source not in seen:
                    e.turned = True
            indegree[name] = 0
            heapq.heappush(ready, (rank[name], name))
        _, name = heapq.heappop(ready)
        done.append(name)
        seen.add(name)
        for e in outs[name]:
            if not e.turned:
                indegree[e.target] -= 1
                if indegree[e.target] == 0:
                    heapq.heappush(ready, (rank[e.target], e.target))
    return done


def _rows(topo: Sequence[str], edges: Sequence[_Edge], rank: Mapping[str, int]) -> dict[str, int]:
    """Step -> row: the first row below all its upstream steps with room for it. Steps go in
    by layer (longest path from a root), those with the longest way down first, then rank."""
    ups: dict[str, list[str]] = {n: [] for n in topo}
    downs: dict[str, list[str]] = {n: [] for n in topo}
    for e in edges:
        ups[e.lower].append(e.upper)
        downs[e.upper].append(e.lower)
    layer: dict[str, int] = {}
    for n in topo:
        layer[n] = max((layer[u] + 1 for u in ups[n]), default=0)
    below: dict[str, int] = {}
    for n in reversed(topo):
        below[n] = max((below[d] + 1 for d in downs[n]), default=0)
    row: dict[str, int] = {}
    filled: list[int] = []
    for n in sorted(topo, key=lambda n: (layer[n], -below[n], rank[n])):
        r = max((row[u] + 1 for u in ups[n]), default=0)
        while r < len(filled) and filled[r] >= MAX_ROW:
            r += 1
        filled.extend([0] * (r + 1 - len(filled)))
        filled[r] += 1
        row[n] = r
    return row


# -- order within rows --------------------------------------------------------------------------
def _pair(ups: Mapping[str, list[int]], downs: Mapping[str, list[int]], u: str, v: str) -> int:
    """Crossings between the links of ``u`` and ``v`` (their neighbours' sorted places) with
    ``u`` left of ``v``."""
    count = 0
    for links in (ups, downs):
        right = links[v]
        if right:
            for a in links[u]:
                count += bisect_left(right, a)
    return count


class _Grid:
    """Rows of node ids with their links to the rows above and below."""

    def __init__(self, rows: list[list[str]], edges: Sequence[_Edge]) -> None:
        self.rows = rows
        self.up: dict[str, list[str]] = {n: [] for row in rows for n in row}
        self.down: dict[str, list[str]] = {n: [] for row in rows for n in row}
        for e in edges:
            for a, b in pairwise(e.chain):
                self.down[a].append(b)
                self.up[b].append(a)
        self.pos: dict[str, int] = {}
        self.renumber()

    def renumber(self) -> None:
        for ids in self.rows:
            for i, n in enumerate(ids):
                self.pos[n] = i

    def crossings(self) -> int:
        """Links between neighbouring rows that cross (pairs with both ends in swapped order)."""
        total = 0
        pos = self.pos
        for ids in self.rows:
            seen: list[int] = []  # lower ends of the links from nodes further left
            for a in ids:
                ends = sorted(pos[b] for b in self.down[a])
                for b in ends:
                    total += len(seen) - bisect_right(seen, b)
                for b in ends:
                    insort(seen, b)
        return total

    def sweep(self, downward: bool) -> None:
        """Sort each row by the barycentre of its neighbours in the row before it."""
        pos = self.pos
        order = range(1, len(self.rows)) if downward else range(len(self.rows) - 2, -1, -1)
        links = self.up if downward else self.down
        for r in order:
            ids = self.rows[r]
            key = {}
            for n in ids:
                ns = links[n]
                key[n] = (sum(pos[m] for m in ns) / len(ns) if ns else pos[n], pos[n])
            ids.sort(key=key.__getitem__)
            for i, n in enumerate(ids):
                pos[n] = i

    def transpose(self) -> None:
        """Swap neighbours in a row while that removes crossings."""
        pos = self.pos
        for ids in self.rows:
            if len(ids) < 2:
                continue
            # the neighbours' places (in the rows above and below: fixed while this row moves)
            ups = {n: sorted(pos[m] for m in self.up[n]) for n in ids}
            downs = {n: sorted(pos[m] for m in self.down[n]) for n in ids}

            for _ in range(4):
                improved = False
                for i in range(len(ids) - 1):
                    u, v = ids[i], ids[i + 1]
                    if _pair(ups, downs, u, v) > _pair(ups, downs, v, u):
                        ids[i], ids[i + 1] = v, u
                        pos[u], pos[v] = i + 1, i
                        improved = True
                if not improved:
                    break

    def reduce(self) -> None:
        """Barycentre sweeps and swaps, down then up, a few rounds; keep the best order."""
        best, kept = self.crossings(), [list(ids) for ids in self.rows]
        for _ in range(ROUNDS):
            before = best
            for downward in (True, False):
                if best == 0:
                    break
                self.sweep(downward)
                self.transpose()
                found = self.crossings()
                if found < best:
                    best, kept = found, [list(ids) for ids in self.rows]
            if best == 0 or best == before:
                break
        self.rows[:] = kept
        self.renumber()


# -- coordinates --------------------------------------------------------------------------------
def _fit_row(nodes: Sequence[_Node], want: Sequence[float], weight: Sequence[float]) -> None:
    """Put the row's nodes as near ``want`` as the gaps allow (least weighted squares, in
    order): pool-adjacent-violators on the positions less their minimal offsets."""
    offsets, acc = [], 0.0
    for i, node in enumerate(nodes):
        if i:
            acc += (nodes[i - 1].width + node.width) / 2 + GAP_X
        offsets.append(acc)
    blocks: list[list[float]] = []  # [weight, weighted sum, count]
    for i in range(len(nodes)):
        blocks.append([weight[i], weight[i] * (want[i] - offsets[i]), 1])
        while len(blocks) > 1 and blocks[-2][1] * blocks[-1][0] > blocks[-1][1] * blocks[-2][0]:
            w, s, n = blocks.pop()
            blocks[-1][0] += w
            blocks[-1][1] += s
            blocks[-1][2] += n
    i = 0
    for w, s, n in blocks:
        for _ in range(int(n)):
            nodes[i].x = s / w + offsets[i]
            i += 1


def _median(values: list[float]) -> float:
    values.sort()
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _place_x(grid: _Grid, nodes: Mapping[str, _Node]) -> None:
    """Rows start centred; then each row is pulled toward its neighbours, down then up."""
    for ids in grid.rows:
        width = sum(nodes[n].width for n in ids) + GAP_X * (len(ids) - 1)
        x = -width / 2
        for n in ids:
            nodes[n].x = x + nodes[n].width / 2
            x += nodes[n].width + GAP_X
    passes = [(r, grid.up) for r in range(1, len(grid.rows))]
    passes += [(r, grid.down) for r in range(len(grid.rows) - 2, -1, -1)]
    for _ in range(X_ROUNDS):
        for r, links in passes:
            row = [nodes[n] for n in grid.rows[r]]
            want, weight = [], []
            for node in row:
                ns = links[node.id]
                if ns:
                    want.append(_median([nodes[m].x for m in ns]))
                    weight.append(float(len(ns)) if node.step else 4.0)
                else:
                    want.append(node.x)
                    weight.append(0.05)
            _fit_row(row, want, weight)
    left = min((n.x - n.width / 2 for n in nodes.values()), default=0.0)
    for node in nodes.values():
        node.x += PAD - left


def _ports(
    edges: Sequence[_Edge], nodes: Mapping[str, _Node]
) -> tuple[dict[int, float], dict[int, float]]:
    """Edge index -> x where it leaves its top node and where it enters its bottom node:
    spread along the side, ordered by where the edge goes (comes from)."""
    leaving: dict[str, list[tuple[float, float, int]]] = {}
    entering: dict[str, list[tuple[float, float, int]]] = {}
    for i, e in enumerate(edges):
        top, bottom = e.chain[0], e.chain[-1]
        leaving.setdefault(top, []).append((nodes[e.chain[1]].x, nodes[bottom].x, i))
        entering.setdefault(bottom, []).append((nodes[e.chain[-2]].x, nodes[top].x, i))
    out: dict[int, float] = {}
    into: dict[int, float] = {}
    for found, side in ((out, leaving), (into, entering)):
        for name, items in side.items():
            items.sort()
            spacing = min(18.0, (NODE_W - 24) / (len(items) - 1)) if len(items) > 1 else 0.0
            for k, (_, _, i) in enumerate(items):
                found[i] = nodes[name].x + (k - (len(items) - 1) / 2) * spacing
    return out, into


def along(a: Point, b: Point, t: float) -> Point:
    """The point ``t`` of the way along ``a``-``b`` as drawn: a straight line when the x are
    equal, else a vertical S-curve (cubic, control points at half the height)."""
    if a[0] == b[0]:
        return a[0], a[1] + (b[1] - a[1]) * t
    mid = (a[1] + b[1]) / 2
    u = 1 - t
    x = (u * u * u + 3 * u * u * t) * a[0] + (3 * u * t * t + t * t * t) * b[0]
    y = u * u * u * a[1] + (3 * u * u * t + 3 * u * t * t) * mid + t * t * t * b[1]
    return x, y


Box = tuple[float, float, float, float]  # centre x, centre y, width, height


def _overlap(a: Box, b: Box) -> float:
    dx = min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2)
    dy = min(a[1] + a[3] / 2, b[1] + b[3] / 2) - max(a[1] - a[3] / 2, b[1] - b[3] / 2)
    return max(0.0, dx) * max(0.0, dy)


def _label_spots(points: Sequence[Point], w: float) -> Iterator[Point]:
    """Where a label may go, best first: along the straight runs through waypoints, then
    along the curves; last, beside the curves' middles (still between the rows)."""
    segments = list(pairwise(points))
    segments.sort(key=lambda s: s[0][0] != s[1][0])  # straight first (a stable sort)
    for a, b in segments:
        for t in (0.5, 0.38, 0.62, 0.26, 0.74):
            yield along(a, b, t)
    for a, b in segments:
        if a[0] != b[0]:
            x, y = along(a, b, 0.5)
            for k in (1, -1, 2, -2, 3, -3):
                yield x + k * (w + 6), y


class _Boxes:
    """Boxes, found by the horizontal bands they touch (as tall as a row and a gap)."""

    def __init__(self, band: float) -> None:
        self.band = band
        self.count = 0
        self.by_band: dict[int, list[tuple[int, Box]]] = {}

    def _bands(self, box: Box) -> range:
        top, bottom = box[1] - box[3] / 2, box[1] + box[3] / 2
        return range(int(top // self.band), int(bottom // self.band) + 1)

    def add(self, box: Box) -> None:
        self.count += 1
        for band in self._bands(box):
            self.by_band.setdefault(band, []).append((self.count, box))

    def cover(self, box: Box) -> float:
        """How much of ``box`` the boxes cover (their overlaps summed)."""
        seen: set[int] = set()
        total = 0.0
        for band in self._bands(box):
            for k, other in self.by_band.get(band, ()):
                if k not in seen:
                    seen.add(k)
                    total += _overlap(box, other)
        return total


def _labels(
    edges: Sequence[_Edge], points: Sequence[list[Point]], nodes: _Boxes, width: float
) -> dict[int, Point]:
    """Edge index -> the centre of its label: the first spot that covers no node and no
    label; else the one that covers the least (nodes count before labels)."""
    taken = _Boxes(nodes.band)
    placed: dict[int, Point] = {}
    labelled = [i for i, e in enumerate(edges) if e.variables]
    labelled.sort(key=lambda i: len(points[i]))  # short edges have few spots: first
    for i in labelled:
        w = _label_width(edges[i].variables)
        best: tuple[float, float] | None = None
        for x, y in _label_spots(points[i], w):
            box = (min(max(x, w / 2 + 3), width - w / 2 - 3), y, w + 4, LABEL_H)
            cost = (nodes.cover(box), taken.cover(box))
            if best is None or cost < best:
                best, placed[i] = cost, (box[0], box[1])
            if cost == (0.0, 0.0):
                break
        x, y = placed[i]
        taken.add((x, y, w + 4, LABEL_H))
    return placed


# -- the layout ---------------------------------------------------------------------------------
def _r(value: float) -> float:
    return round(value, 1) + 0.0  # no -0.0


def _grid(
    names: Sequence[str], edges: Sequence[_Edge], row: Mapping[str, int]
) -> tuple[_Grid, dict[str, _Node]]:
    """The rows of nodes: the steps, and a waypoint of each long edge in each row it spans
    (as wide as its label, or narrow); each edge gets its chain of nodes, top to bottom."""
    index = {n: i for i, n in enumerate(names)}
    nodes = {n: _Node(n, True, NODE_W, row[n]) for n in names}
    first: dict[str, tuple[int, int, int]] = {n: (index[n], 0, 0) for n in names}
    for i, e in enumerate(edges):
        wide = _label_width(e.variables) + 4 if e.variables else WAYPOINT_W
        e.chain = [e.upper]
        for r in range(row[e.upper] + 1, row[e.lower]):
            waypoint = _Node(f"\0{i}:{r}", False, wide, r)
            nodes[waypoint.id] = waypoint
            first[waypoint.id] = (index[e.upper], 1, index[e.lower])
            e.chain.append(waypoint.id)
        e.chain.append(e.lower)
    rows: list[list[str]] = [[] for _ in range(max(row.values(), default=-1) + 1)]
    for node in nodes.values():
        rows[node.row].append(node.id)
    for ids in rows:  # start: notebook order, waypoints spread between the row's steps
        steps = sorted((n for n in ids if nodes[n].step), key=first.__getitem__)
        ways = sorted((n for n in ids if not nodes[n].step), key=lambda n: first[n][::-1])
        start: list[str] = []
        for i in range(max(len(steps), len(ways))):
            start += steps[i : i + 1] + ways[i : i + 1]
        ids[:] = start
    return _Grid(rows, edges), nodes


def _lines(
    edges: Sequence[_Edge], nodes: Mapping[str, _Node], top: Sequence[float], height: float
) -> list[list[Point]]:
    """Each edge's points: the source's bottom, the top and bottom of each waypoint, the
    target's top (a turned edge of a cycle: the other way round)."""
    out_x, in_x = _ports(edges, nodes)
    lines = []
    for i, e in enumerate(edges):
        line = [(out_x[i], top[nodes[e.upper].row] + height)]
        for waypoint in e.chain[1:-1]:
            x, r = nodes[waypoint].x, nodes[waypoint].row
            line += [(x, top[r]), (x, top[r] + height)]
        line.append((in_x[i], top[nodes[e.lower].row]))
        lines.append(line[::-1] if e.turned else line)
    return lines


def layout(view: Mapping[str, Any]) -> dict[str, Any]:
    """The ``Layout`` of a pipeline view (``kfnb.spec.pipeline_view``): where to draw its
    steps (one node each, in notebook order) and its edges (from the source's bottom to the
    target's top, through waypoints), as JSON data with numbers rounded to 0.1.

    What it reads of the view (steps' names, cells, ``after`` and resources, the edges, the
    order) is the key of a small cache: a page of runs of one pipeline is laid out once."""
    steps = [
        {key: step.get(key) for key in ("name", "cells", "after", "resources")}
        for step in view.get("steps") or []
        if isinstance(step, Mapping)
    ]
    key = {"steps": steps, "edges": view.get("edges"), "order": view.get("order")}
    return json.loads(_cached(json.dumps(key, default=str)))  # a fresh copy each time


@lru_cache(maxsize=64)
def _cached(key: str) -> str:
    return json.dumps(_layout(json.loads(key)))


def _layout(view: Mapping[str, Any]) -> dict[str, Any]:
    steps = _steps(view)
    names = [s["name"] for s in steps]
    rank: dict[str, int] = {}
    for n in [*(o for o in view.get("order") or [] if o in names), *names]:
        rank.setdefault(n, len(rank))
    edges = _edges(view, steps)
    row = _rows(_topological(names, edges, rank), edges, rank)
    grid, nodes = _grid(names, edges, row)
    grid.reduce()
    _place_x(grid, nodes)

    height = NODE_H_TALL if any(_tall(s) for s in steps) else NODE_H
    top = [PAD + r * (height + GAP_Y) for r in range(len(grid.rows))]
    width = max((n.x + n.width / 2 for n in nodes.values()), default=NODE_W + PAD) + PAD
    bottom = max(top, default=PAD) + height + PAD
    lines = _lines(edges, nodes, top, height)
    boxes = _Boxes(height + GAP_Y)
    for n in names:
        boxes.add((nodes[n].x, top[row[n]] + height / 2, NODE_W + 4, height + 4))
    labels = _labels(edges, lines, boxes, width)
    order = {n: k for ids in grid.rows for k, n in enumerate(m for m in ids if nodes[m].step)}
    return {
        "width": _r(width),
        "height": _r(bottom),
        "node_width": NODE_W,
        "node_height": height,
        "max_row": MAX_ROW,
        "nodes": [
            {
                "step": n,
                "caption": caption(step.get("cells") or []),
                "badges": badges(step.get("resources")),
                "layer": row[n],
                "order": order[n],
                "x": _r(nodes[n].x),
                "y": _r(top[row[n]] + height / 2),
            }
            for n, step in zip(names, steps, strict=True)
        ],
        "edges": [
            {
                "source": e.source,
                "target": e.target,
                "variables": list(e.variables),
                "points": [[_r(x), _r(y)] for x, y in lines[i]],
                "label": [_r(v) for v in labels[i]] if i in labels else None,
            }
            for i, e in enumerate(edges)
        ],
    }


@overload
def with_layout(view: None) -> None: ...
@overload
def with_layout(view: Mapping[str, Any]) -> dict[str, Any]: ...
def with_layout(view: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A shallow copy of the pipeline view with its ``layout`` (``None`` stays ``None``)."""
    if view is None:
        return None
    return {**view, "layout": layout(view)}
