"""The one DAG layout (``kfnb.layout``): rows, wrapping, waypoints, crossings, labels, contract."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from importlib.resources import files
from itertools import combinations, pairwise
from typing import Any

import jsonschema
import pytest
import yaml

from kfnb.layout import CHAR_W, LABEL_H, MAX_ROW, along, label_text, layout, with_layout

Box = tuple[float, float, float, float]  # left, top, right, bottom


def view(
    names: Sequence[str],
    edges: Sequence[tuple[str, str, Sequence[str]]] = (),
    *,
    after: dict[str, list[str]] | None = None,
    resources: dict[str, dict[str, str]] | None = None,
    order: Sequence[str] = (),
) -> dict[str, Any]:
    """A pipeline view as ``kfnb.spec.pipeline_view`` gives it (the fields the layout reads)."""
    return {
        "name": "demo",
        "steps": [
            {
                "name": n,
                "cells": [2 * i, 2 * i + 1],
                "after": (after or {}).get(n, []),
                "inputs": {},
                "resources": (resources or {}).get(n, {}),
            }
            for i, n in enumerate(names)
        ],
        "edges": [{"source": a, "target": b, "variables": list(v)} for a, b, v in edges],
        "order": list(order),
    }


def notebook_like(n: int, seed: int) -> dict[str, Any]:
    """A random pipeline shaped like notebooks: each step reads from up to three of the eight
    steps above it (so long edges, fan-outs and joins), some edges explicit."""
    rnd = random.Random(seed)
    names = [f"step_{i}" for i in range(n)]
    edges = []
    for j in range(1, n):
        ups = rnd.sample(range(max(0, j - 8), j), min(j, rnd.choice([1, 1, 2, 3])))
        for i in ups:
            variables = rnd.choice([[], ["x"], ["df", "model"], ["a_long_variable_name", "y"]])
            edges.append((names[i], names[j], variables))
    return view(names, edges)


GRAPHS = {
    "chain": view(list("abc"), [("a", "b", ["x"]), ("b", "c", [])]),
    "fan5": view(list("rabcdej"), [("r", x, [f"v_{x}"]) for x in "abcde"])
    | {"steps": view(list("rabcdej"), after={"j": list("abcde")})["steps"]},
    "random20": notebook_like(20, 1),
    "random40": notebook_like(40, 2),
    "random60": notebook_like(60, 3),
}


def node_boxes(placed: dict[str, Any]) -> dict[str, Box]:
    w, h = placed["node_width"], placed["node_height"]
    return {
        n["step"]: (n["x"] - w / 2, n["y"] - h / 2, n["x"] + w / 2, n["y"] + h / 2)
        for n in placed["nodes"]
    }


def drawn(points: Sequence[Sequence[float]], samples: int = 24) -> Iterator[tuple[float, float]]:
    """Points along an edge as clients draw it (lines and S-curves)."""
    for a, b in pairwise(points):
        for k in range(samples + 1):
            yield along((a[0], a[1]), (b[0], b[1]), k / samples)


def inside(p: tuple[float, float], box: Box) -> bool:
    return box[0] < p[0] < box[2] and box[1] < p[1] < box[3]


def overlaps(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def label_box(edge: dict[str, Any]) -> Box:
    x, y = edge["label"]
    w = len(label_text(edge["variables"])) * CHAR_W + 8
    return (x - w / 2, y - LABEL_H / 2 + 1, x + w / 2, y + LABEL_H / 2 - 1)


def crossings(placed: dict[str, Any]) -> int:
    """Pairs of edges that cross between two rows: their x order at the rows' sides flips."""
    by_gap: dict[float, list[tuple[float, float]]] = {}
    for edge in placed["edges"]:
        for a, b in pairwise(edge["points"]):
            if a[1] != b[1] and not (a[0] == b[0] and b[1] - a[1] == placed["node_height"]):
                by_gap.setdefault(min(a[1], b[1]), []).append(
                    (a[0], b[0]) if a[1] < b[1] else (b[0], a[0])
                )
    return sum(
        1
        for segments in by_gap.values()
        for (a1, b1), (a2, b2) in combinations(segments, 2)
        if (a1 - a2) * (b1 - b2) < 0
    )


@pytest.mark.parametrize("name", list(GRAPHS))
def test_every_step_placed_once_in_rows_that_follow_the_edges(name: str) -> None:
    v = GRAPHS[name]
    placed = layout(v)
    assert [n["step"] for n in placed["nodes"]] == [s["name"] for s in v["steps"]]
    layer = {n["step"]: n["layer"] for n in placed["nodes"]}
    for edge in placed["edges"]:
        assert layer[edge["target"]] > layer[edge["source"]], edge
    rows = Counter(layer.values())
    assert max(rows.values()) <= MAX_ROW == placed["max_row"]
    assert sorted(rows) == list(range(len(rows)))  # no empty row
    for r in rows:  # order: 0..n-1 left to right among the steps of a row
        in_row = sorted((n["x"], n["order"]) for n in placed["nodes"] if n["layer"] == r)
        assert [o for _, o in in_row] == list(range(len(in_row)))
    ys = {n["layer"]: n["y"] for n in placed["nodes"]}
    assert all(ys[r] < ys[r + 1] for r in range(len(ys) - 1))


@pytest.mark.parametrize("name", list(GRAPHS))
def test_edges_and_labels_keep_off_the_nodes(name: str) -> None:
    """Every edge runs from its source's bottom to its target's top through waypoints, and
    passes through no node box; no label covers a node."""
    placed = layout(GRAPHS[name])
    boxes = node_boxes(placed)
    for edge in placed["edges"]:
        first, last = edge["points"][0], edge["points"][-1]
        assert first[1] == boxes[edge["source"]][3] and last[1] == boxes[edge["target"]][1]
        assert boxes[edge["source"]][0] < first[0] < boxes[edge["source"]][2]
        for p in drawn(edge["points"]):
            assert not any(inside(p, box) for box in boxes.values()), (edge, p)
        assert (edge["label"] is None) == (not edge["variables"])
        if edge["label"] is not None:
            label = label_box(edge)
            assert not any(overlaps(label, box) for box in boxes.values()), edge
            assert label[0] >= 0 and label[2] <= placed["width"]
    for n in placed["nodes"]:
        assert n["x"] - placed["node_width"] / 2 > 0 and n["x"] < placed["width"]
        assert n["y"] + placed["node_height"] / 2 < placed["height"]


def test_a_wide_fan_out_wraps_onto_a_row_below_through_waypoints() -> None:
    placed = layout(GRAPHS["fan5"])
    layer = {n["step"]: n["layer"] for n in placed["nodes"]}
    assert sorted(layer[x] for x in "abcde") == [1, 1, 1, 2, 2]
    assert layer["r"] == 0 and layer["j"] == 3  # the join moves down below the wrapped row
    for edge in placed["edges"]:
        rows = layer[edge["target"]] - layer[edge["source"]]
        assert len(edge["points"]) == 2 * rows  # a waypoint (top, bottom) in each row between
        if rows > 1:  # the waypoint runs straight through its row
            (x1, _), (x2, _) = edge["points"][1:3]
            assert x1 == x2
    assert crossings(placed) == 0
    labels = [label_box(e) for e in placed["edges"] if e["label"]]
    assert not any(overlaps(a, b) for a, b in combinations(labels, 2))


def test_edges_into_a_wrapped_fan_out_pass_between_its_first_rows_steps() -> None:
    """Not around them: the drawing stays as narrow as its widest row, and symmetric."""
    placed = layout(GRAPHS["fan5"])
    x = {n["step"]: n["x"] for n in placed["nodes"]}
    layer = {n["step"]: n["layer"] for n in placed["nodes"]}
    first = sorted(x[s] for s in "abcde" if layer[s] == 1)
    for edge in placed["edges"]:
        if edge["source"] == "r" and layer[edge["target"]] == 2:
            through = edge["points"][1][0]  # its waypoint in the first row
            assert first[0] < through < first[-1], (edge, first)
    row_width = 3 * placed["node_width"]
    assert placed["width"] < row_width + 4 * placed["node_width"] / 2, placed["width"]


def test_after_links_are_edges_too_and_edges_merge() -> None:
    v = view(
        list("abc"),
        [("a", "b", ["x"]), ("a", "b", ["y", "x"]), ("a", "ghost", ["z"])],
        after={"b": ["a"], "c": ["a", "unknown"]},
    )
    edges = layout(v)["edges"]
    assert [(e["source"], e["target"], e["variables"]) for e in edges] == [
        ("a", "b", ["x", "y"]),
        ("a", "c", []),
    ]
    assert edges[1]["label"] is None


def test_crossed_chains_uncross() -> None:
    """Notebook order a1, b1, b2, a2 would cross a1->a2 and b1->b2: a crossing-free order
    exists, and the layout finds it; also on a tree written in a mixed order, with a long edge
    whose waypoints must go between the branches."""
    two = view(["a1", "b1", "b2", "a2"], [("a1", "a2", ["x"]), ("b1", "b2", ["y"])])
    assert crossings(layout(two)) == 0
    tree = view(
        ["r", "b", "a", "b2", "a1", "b1", "c"],
        [
            *[("r", "a", ["x"]), ("r", "b", []), ("a", "a1", ["v"]), ("b", "b1", ["w"])],
            *[("b", "b2", []), ("a1", "c", ["y"]), ("b2", "c", []), ("r", "c", ["long"])],
        ],
    )
    assert crossings(layout(tree)) == 0


def test_nodes_say_their_cells_and_resources() -> None:
    train = {"nvidia.com/gpu": "2", "cpu": "4", "memory": "16Gi", "x.io/fpga": "1"}
    v = view(["load", "train", "report"], resources={"train": train})
    v["steps"][2]["cells"] = []
    v["steps"][0]["cells"] = [7]
    placed = layout(v)
    nodes = {n["step"]: n for n in placed["nodes"]}
    assert [nodes[n]["caption"] for n in ("load", "train", "report")] == [
        "cell 7",
        "cells 2-3",
        "no cells",
    ]
    assert nodes["train"]["badges"] == [
        {"text": "GPU 2", "kind": "gpu", "title": "nvidia.com/gpu: 2"},
        {"text": "CPU 4", "kind": "cpu", "title": "cpu: 4"},
        {"text": "16Gi", "kind": "memory", "title": "memory: 16Gi"},
        {"text": "fpga 1", "kind": "other", "title": "x.io/fpga: 1"},
    ]
    assert placed["node_height"] == 58  # the badges do not fit beside the caption
    assert layout(view(["a"], resources={"a": {"amd.com/gpu": "1"}}))["node_height"] == 44
    assert layout(view(["a"], resources={"a": {"amd.com/gpu": "1"}}))["nodes"][0]["badges"] == [
        {"text": "GPU 1", "kind": "gpu", "title": "amd.com/gpu: 1"}
    ]


def test_long_labels_are_cut() -> None:
    placed = layout(view(["a", "b"], [("a", "b", ["first_variable", "second_variable"])]))
    assert placed["edges"][0]["variables"] == ["first_variable", "second_variable"]
    assert label_text(placed["edges"][0]["variables"]) == "first_variable, secon…"


def test_deterministic_byte_for_byte_across_processes() -> None:
    v = GRAPHS["random40"]
    text = json.dumps(layout(v))
    assert json.dumps(layout(json.loads(json.dumps(v)))) == text
    assert layout(v) is not layout(v)  # callers get their own copy
    script = (
        "import json, sys; from kfnb.layout import layout; "
        "print(json.dumps(layout(json.load(sys.stdin))))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(v),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert done.stdout.strip() == text


def test_a_cycle_or_a_broken_view_does_not_crash() -> None:
    cyclic = view(list("abcd"), [("a", "b", ["x"]), ("b", "c", []), ("c", "a", ["y"])])
    cyclic["steps"][3]["after"] = ["d", "c"]
    placed = layout(cyclic)
    assert sorted(n["step"] for n in placed["nodes"]) == list("abcd")
    assert len(placed["edges"]) == 4
    validate(placed)
    empty = layout({"steps": [], "edges": []})
    assert empty["nodes"] == [] and empty["edges"] == [] and empty["width"] > 0
    broken = layout({"steps": [{"name": "a"}, "junk", {"cells": [1]}], "edges": [None]})
    assert [n["step"] for n in broken["nodes"]] == ["a"]
    assert with_layout(None) is None


def test_with_layout_adds_it_to_a_copy() -> None:
    v = GRAPHS["chain"]
    served = with_layout(v)
    assert "layout" not in v and served["layout"] == layout(v)
    assert {k: served[k] for k in v} == v


CONTRACT: dict[str, Any] = yaml.safe_load(
    files("kfnb.server_ext").joinpath("openapi.yaml").read_text()
)


def json_schema(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema: ``nullable: true`` also allows ``null``."""
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: {n: json_schema(p) for n, p in v.items()} if k == "properties" else json_schema(v)
        for k, v in node.items()
        if k != "nullable"
    }
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") is True else out


def validate(placed: dict[str, Any]) -> None:
    schema = {
        "$ref": "#/components/schemas/Layout",
        "components": json_schema(CONTRACT["components"]),
    }
    jsonschema.Draft202012Validator(schema).validate(placed)


@pytest.mark.parametrize("name", list(GRAPHS))
def test_the_layout_is_the_contract_s(name: str) -> None:
    validate(layout(GRAPHS[name]))
    served = with_layout(GRAPHS[name])
    served.update(description="", experiment=None, image=None, parameters={}, metrics=[])
    for step in served["steps"]:
        step.update(outputs=[], image=None, labels={}, annotations={}, retries=0, timeout=None)
        step.update(cache=True, env={}, node_selector={}, tolerations=[])
    jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/Pipeline", "components": json_schema(CONTRACT["components"])}
    ).validate(served)


def test_sixty_steps_lay_out_quickly() -> None:
    """Laid out whenever a pipeline is served: it must stay cheap (~10-15 ms for 60 steps
    here; the bound leaves room for a slow machine). Same view: cached."""
    from kfnb.layout import _layout

    v = notebook_like(60, 4)
    best = min(_timed(_layout, v) for _ in range(3))
    assert best < 0.2, f"{best * 1000:.0f} ms"
    layout(v)
    assert _timed(layout, v) < best


def _timed(f: Any, v: dict[str, Any]) -> float:
    start = time.perf_counter()
    f(v)
    return time.perf_counter() - start
