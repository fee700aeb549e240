"""The pure-Python parts of the notebook widgets: DAG layout and SVG, plots, table rows."""

from __future__ import annotations

import math
import re
from pathlib import Path

from kfnb.layout import layout
from kfnb.tracking import Metric, Run, StepRun
from kfnb.widgets.dag import STATUS_COLORS, dag_svg, pipeline_edges, run_pipeline
from kfnb.widgets.plot import bar_plot, line_plot
from kfnb.widgets.snapshot import run_html, series_of
from kfnb.widgets.table import rows_of, sort_rows, text_table


def make_run(**statuses: str) -> Run:
    steps = [
        StepRun(
            "r1",
            name,
            status,  # type: ignore[arg-type]
            attempt=1,
            started_at=100.0,
            finished_at=None if status == "RUNNING" else 102.5,
            cached_from="r0/" + name if status == "CACHED" else None,
        )
        for name, status in statuses.items()
    ]
    return Run(
        id="r1",
        kind="pipeline",
        name="demo <p>",
        status="RUNNING",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={"n": 1},
        created_at=99.0,
        started_at=99.5,
        finished_at=None,
        error=None,
        parent_id=None,
        runner_pid=None,
        runner_host=None,
        artifacts_dir="/tmp/x",
        steps=steps,
        metrics={"loss": 0.25},
    )


def test_the_picture_is_the_served_layout() -> None:
    """Nodes sit where ``kfnb.layout`` puts them (the layout the server serves with the run's
    pipeline): ``data-layer``/``data-order`` say so; explicit edges are dashed, data edges
    labelled with their variables."""
    run = make_run(load="SUCCEEDED", a="RUNNING", b="PENDING", c="PENDING", d="PENDING")
    names = ["load", "a", "b", "c", "d"]
    steps = [{"name": n, "cells": [i], "after": [], "resources": {}} for i, n in enumerate(names)]
    steps[4]["resources"] = {"nvidia.com/gpu": "1"}
    edges = [{"source": "load", "target": n, "variables": ["df"]} for n in "abcd"]
    edges.append({"source": "a", "target": "d", "variables": []})
    run.spec = {"pipeline": {"name": "demo", "steps": steps, "edges": edges, "order": names}}
    svg = dag_svg(run, pipeline_edges(run), now=103.0)
    placed = layout(run.pipeline or {})
    assert placed == layout(run_pipeline(run))
    drawn = {
        m["step"]: (int(m["layer"]), int(m["order"]))
        for m in re.finditer(
            r'data-step="(?P<step>[^"]+)" data-status="[A-Z]+" '
            r'data-layer="(?P<layer>\d+)" data-order="(?P<order>\d+)"',
            svg,
        )
    }
    assert drawn == {n["step"]: (n["layer"], n["order"]) for n in placed["nodes"]}
    assert max(layer for layer, _ in drawn.values()) == 2  # four fan-out steps: a wrap
    assert svg.count('class="kfnb-dag-edge"') == 5 and svg.count('stroke-dasharray="5 4"') == 1
    assert svg.count('class="kfnb-dag-label"') == 4 and ">df</text>" in svg
    assert "nvidia.com/gpu: 1" in svg  # the badges are in the node's tooltip


def test_dag_svg_colours_steps_by_status() -> None:
    run = make_run(a="SUCCEEDED", b="RUNNING", c="CACHED", d="PENDING", e="FAILED")
    svg = dag_svg(run, [("a", "b"), ("a", "c")], now=103.0)
    for name, status in [
        ("a", "SUCCEEDED"),
        ("b", "RUNNING"),
        ("c", "CACHED"),
        ("d", "PENDING"),
        ("e", "FAILED"),
    ]:
        assert f'data-step="{name}" data-status="{status}"' in svg
        assert f'fill="{STATUS_COLORS[status][0]}"' in svg
    assert ">cached</text>" in svg and "running · 3.0s" in svg and "succeeded · 2.5s" in svg
    assert svg.count('class="kfnb-dag-edge"') == 2
    assert svg.startswith("<svg") and svg.endswith("</svg>")


def test_plots_skip_non_finite_values() -> None:
    svg = line_plot([(0, 1.0), (1, math.nan), (2, 0.5)], "loss")
    assert "<polyline" in svg and svg.count(",") >= 2 and "loss = 0.5" in svg
    assert "<polyline" not in line_plot([], "empty")
    bars = bar_plot([("r1", -1.0), ("r2", 2.0), ("r3", math.inf)], "score")
    assert bars.count('class="kfnb-bar"') == 2 and 'data-value="-1.0"' in bars


def test_snapshot_and_series() -> None:
    metrics = [
        Metric("loss", 0.5, 1, "a", 1.0),
        Metric("loss", 1.0, 0, "a", 0.5),
        Metric("acc", 0.9, None, "a", 2.0),
    ]
    assert series_of(metrics) == {"loss": [(0, 1.0), (1, 0.5)]}
    html = run_html(make_run(a="SUCCEEDED"), series={"loss": [(0, 1.0)]}, now=103.0)
    assert "demo &lt;p&gt;" in html and "kfnb-status-SUCCEEDED" in html
    assert 'data-metric="loss"' in html and "kfnb-line-plot" in html


def test_rows_sort_with_missing_values_last() -> None:
    a, b = make_run(x="SUCCEEDED"), make_run(x="SUCCEEDED")
    b.id, b.metrics, b.params = "r2", {}, {"n": 2, "m": "z"}
    rows, columns = rows_of([a, b])
    assert columns == [
        "id",
        "started",
        "status",
        "duration",
        "backend",
        "param.n",
        "param.m",
        "metric.loss",
    ]
    assert [r["id"] for r in sort_rows(rows, "metric.loss", True)] == ["r1", "r2"]
    assert [r["id"] for r in sort_rows(rows, "metric.loss", False)] == ["r1", "r2"]
    assert [r["id"] for r in sort_rows(rows, "param.n", True)] == ["r2", "r1"]
    text = text_table(rows, columns)
    assert text.splitlines()[0].split() == [
        "id",
        "started",
        "status",
        "duration",
        "backend",
        "n",
        "m",
        "loss",
    ]


def test_the_edges_come_from_the_pipeline_stored_with_the_run(tmp_path: Path) -> None:
    """Drawn from ``run.pipeline``; a notebook at the run's path is never read, and a run
    recorded before runs kept their pipeline is drawn from its steps, side by side."""
    notebook = tmp_path / "gone.ipynb"
    notebook.write_text("not a notebook: reading it would fail")
    run = make_run(load="SUCCEEDED", fit="RUNNING", report="PENDING")
    run.notebook = str(notebook)
    assert pipeline_edges(run) == []  # no stored pipeline: no arrows, no re-parse
    svg = dag_svg(run, pipeline_edges(run))
    assert "kfnb-dag-edge" not in svg and svg.count("kfnb-dag-node") == 3
    edges = [
        {"source": "load", "target": "fit", "variables": ["x"]},
        {"source": "fit", "target": "report", "variables": []},
        {"source": "fit", "target": "gone_step", "variables": ["y"]},
    ]
    run.spec = {"pipeline": {"name": "demo", "steps": [], "edges": edges, "order": []}}
    assert pipeline_edges(run) == [("load", "fit"), ("fit", "report")]
    svg = dag_svg(run, pipeline_edges(run))
    assert 'data-source="load" data-target="fit"' in svg
    assert 'data-source="fit" data-target="report"' in svg
    assert "gone_step" not in svg
