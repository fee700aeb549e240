"""The study plots (``kfnb.tuning.plots``) drawn from hand-made study views: valid SVG, one
mark per trial in its state, parameter axes after the space (log, int, choice), placeholders
for what cannot be drawn yet, the same bytes for the same view, and matplotlib's settings left
as they were."""

from __future__ import annotations

import copy
import itertools
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any

import matplotlib as mpl
import pytest

from kfnb.tuning.plots import history_svg, intermediate_svg, parallel_svg
from kfnb.tuning.view import STATES

SVG = "{http://www.w3.org/2000/svg}"
SPACE = {
    "lr": {"float": [0.0001, 1], "log": True},
    "layers": {"int": [1, 5]},
    "opt": {"choice": ["sgd", "adam", "rms"]},
}


def trial(
    number: int,
    status: str,
    value: float | None = None,
    curve: list[list[float]] | None = None,
    **params: Any,
) -> dict[str, Any]:
    params = {"lr": 0.01, "layers": 3, "opt": "adam", **params}
    return {
        "id": f"t{number}",
        "number": number,
        "status": status,
        "params": params,
        "value": value if status == "SUCCEEDED" else None,
        "intermediate": curve or [],
        "duration": 1.0,
        "error": "boom" if status == "FAILED" else None,
        "run": None,
    }


def view_of(
    trials: list[dict[str, Any]], direction: str = "minimize", space: Any = None
) -> dict[str, Any]:
    scored = [t for t in trials if t["status"] == "SUCCEEDED"]
    sign = -1 if direction == "maximize" else 1
    best = min(scored, key=lambda t: (sign * t["value"], t["number"])) if scored else None
    return {
        "id": "s1",
        "name": "toy <study>",
        "status": "RUNNING",
        "study": {
            "space": SPACE if space is None else space,
            "objective": "loss",
            "direction": direction,
        },
        "counts": {s: sum(t["status"] == s for t in trials) for s in STATES},
        "best": best,
        "trials": trials,
    }


def forty() -> dict[str, Any]:
    """40 trials: succeeded, pruned (with their curves), failed, one running."""
    out = []
    for n in range(40):
        lr = 10 ** (-4 + 4 * ((n * 7) % 40) / 39)
        layers, opt = 1 + n % 5, ("sgd", "adam", "rms")[n % 3]
        final = 0.2 + ((n * 13) % 40) / 10
        curve = [[s, final + 1.0 / (s + 1)] for s in range(10)]
        status = "SUCCEEDED" if n % 3 else "PRUNED"
        if n in (5, 17):
            status = "FAILED"
        if n == 39:
            status = "RUNNING"
        if status == "PRUNED":
            curve = curve[:4]
        out.append(trial(n, status, final, curve, lr=lr, layers=layers, opt=opt))
    return view_of(out)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == f"{SVG}svg"
    return root


def groups(root: ET.Element, pattern: str) -> dict[str, ET.Element]:
    return {
        g.get("id", ""): g for g in root.iter(f"{SVG}g") if re.fullmatch(pattern, g.get("id", ""))
    }


def labels(group: ET.Element) -> list[str]:
    """The tick labels of an axis, as the SVG writes them (text, not glyphs)."""
    texts = ("".join(p.strip() for p in t.itertext()) for t in group.iter(f"{SVG}text"))
    return [text.replace("\u2212", "-") for text in texts]  # a minus sign as "-"


def marker_y(group: ET.Element) -> float:
    uses = list(group.iter(f"{SVG}use"))
    assert len(uses) == 1, "one marker"
    return float(uses[0].get("y", "nan"))


def path_points(group: ET.Element) -> list[tuple[float, float]]:
    (path,) = [p for p in group.iter(f"{SVG}path") if p.get("d")]
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path.get("d", ""))]
    return list(zip(numbers[::2], numbers[1::2], strict=True))


def test_history_marks_each_trial_in_its_state() -> None:
    view = forty()
    root = parse(history_svg(view))
    marks = groups(root, r"kfnb-history-trial-\d+-\w+")
    drawn = {int(k.split("-")[3]): k.split("-")[4] for k in marks}
    # every trial with a value (succeeded), a last intermediate value (pruned, running) or an
    # error (failed) has exactly one mark, in its state
    assert drawn == {t["number"]: t["status"].lower() for t in view["trials"]}
    assert sorted(set(drawn.values())) == ["failed", "pruned", "running", "succeeded"]
    assert "kfnb-history-best-so-far" in groups(root, r"kfnb-history-best.*")
    assert root.get("class") == "kfnb-study-plot kfnb-study-history"


def test_history_puts_pruned_trials_at_their_last_value_and_tracks_the_best() -> None:
    view = view_of(
        [
            trial(0, "SUCCEEDED", 2.0),
            trial(1, "PRUNED", curve=[[0, 5.0], [1, 2.0]]),  # stopped where trial 0 ended
            trial(2, "SUCCEEDED", 1.0),
            trial(3, "SUCCEEDED", 3.0),
            trial(4, "FAILED"),
        ]
    )
    root = parse(history_svg(view))
    marks = groups(root, r"kfnb-history-trial-.*")
    y = {k: marker_y(g) for k, g in marks.items()}
    assert y["kfnb-history-trial-1-pruned"] == pytest.approx(y["kfnb-history-trial-0-succeeded"])
    assert y["kfnb-history-trial-2-succeeded"] > y["kfnb-history-trial-3-succeeded"]  # SVG y
    best = groups(root, r"kfnb-history-best")["kfnb-history-best"]
    assert marker_y(best) == pytest.approx(y["kfnb-history-trial-2-succeeded"])
    line = path_points(groups(root, r"kfnb-history-best-so-far")["kfnb-history-best-so-far"])
    assert line[0][1] == pytest.approx(y["kfnb-history-trial-0-succeeded"])
    assert line[-1][1] == pytest.approx(y["kfnb-history-trial-2-succeeded"])  # flat to the end
    last = next(marks["kfnb-history-trial-4-failed"].iter(f"{SVG}use"))
    assert line[-1][0] == pytest.approx(float(last.get("x", "nan")))  # on to the last trial


def test_parallel_coordinates_follow_the_space() -> None:
    trials = [
        trial(0, "SUCCEEDED", 1.0, lr=0.0001, layers=1, opt="sgd"),
        trial(1, "SUCCEEDED", 3.0, lr=1.0, layers=5, opt="rms"),
        trial(2, "SUCCEEDED", 2.0, lr=0.01, layers=3, opt="adam"),
        trial(3, "PRUNED", curve=[[0, 9.0]], lr=0.5),
        trial(4, "FAILED"),
    ]
    root = parse(parallel_svg(view_of(trials)))
    axes = groups(root, r"kfnb-parallel-axis-.*")
    assert sorted(axes) == [
        "kfnb-parallel-axis-layers-int",
        "kfnb-parallel-axis-loss-objective",
        "kfnb-parallel-axis-lr-float",
        "kfnb-parallel-axis-opt-choice",
    ]
    lines = groups(root, r"kfnb-parallel-trial-.*")
    assert sorted(lines) == [
        "kfnb-parallel-trial-0-succeeded-best",
        "kfnb-parallel-trial-1-succeeded",
        "kfnb-parallel-trial-2-succeeded",
    ]  # succeeded trials only, the best marked
    low, high, mid = (path_points(lines[k]) for k in sorted(lines))
    assert len(mid) == 4  # three parameters and the objective
    for axis in range(4):  # the middle trial sits half way on every axis:
        # lr 0.01 on a log axis 1e-4..1, layers 3 of 1..5, "adam" between "sgd" and "rms",
        # loss 2.0 between 1.0 and 3.0
        assert mid[axis][1] == pytest.approx((low[axis][1] + high[axis][1]) / 2, abs=0.01)
    lr = axes["kfnb-parallel-axis-lr-float"]
    assert labels(lr) == ["10-4", "10-3", "10-2", "10-1", "100"]  # decades (10^-4 ... 10^0)
    ticks = [float(u.get("y", "nan")) for u in lr.iter(f"{SVG}use")]
    gaps = {round(b - a, 3) for a, b in itertools.pairwise(ticks)}
    assert len(ticks) == 5 and len(gaps) == 1  # evenly spaced: a log axis
    assert labels(axes["kfnb-parallel-axis-opt-choice"]) == ["sgd", "adam", "rms"]
    assert labels(axes["kfnb-parallel-axis-layers-int"]) == ["1", "2", "3", "4", "5"]
    assert groups(root, r"kfnb-parallel-colorbar")


def test_maximize_and_katib_text_values() -> None:
    """A Katib study records values as text, booleans too: still placed on their axis."""
    space = {"flag": {"choice": [True, False]}, "k": {"int": [1, 3]}}
    trials = [
        {**trial(0, "SUCCEEDED", 0.5), "params": {"flag": "true", "k": "1"}},
        {**trial(1, "SUCCEEDED", 0.9), "params": {"flag": "false", "k": "3"}},
    ]
    root = parse(parallel_svg(view_of(trials, "maximize", space)))
    lines = groups(root, r"kfnb-parallel-trial-.*")
    assert sorted(lines) == [
        "kfnb-parallel-trial-0-succeeded",
        "kfnb-parallel-trial-1-succeeded-best",
    ]
    first, second = (path_points(lines[k]) for k in sorted(lines))
    assert first[0][1] > second[0][1]  # true (first value) lower than false (SVG y grows down)


@pytest.mark.parametrize(
    "view",
    [
        view_of([]),
        {"trials": []},
        {},
        view_of([trial(0, "RUNNING"), trial(1, "PENDING")]),
        view_of([trial(0, "CANCELED")]),
    ],
    ids=["empty", "no-study", "nothing", "only-started", "canceled"],
)
def test_nothing_to_draw_gives_a_placeholder(view: dict[str, Any]) -> None:
    for draw in (history_svg, parallel_svg, intermediate_svg):
        root = parse(draw(view))
        assert "kfnb-study-placeholder" in root.get("class", "")


def test_one_trial_and_failures_only_draw_without_errors() -> None:
    one = view_of([trial(0, "SUCCEEDED", 1.5, curve=[[0, 1.5]])])
    assert groups(parse(history_svg(one)), r"kfnb-history-trial-0-succeeded")
    assert groups(parse(parallel_svg(one)), r"kfnb-parallel-trial-0-succeeded-best")
    assert groups(parse(intermediate_svg(one)), r"kfnb-intermediate-trial-0-succeeded")
    failed = view_of([trial(0, "FAILED"), trial(1, "FAILED")])
    assert len(groups(parse(history_svg(failed)), r"kfnb-history-trial-\d-failed")) == 2
    assert "kfnb-study-placeholder" in parse(parallel_svg(failed)).get("class", "")
    no_space = view_of([trial(0, "SUCCEEDED", 1.0)], space={})
    assert "kfnb-study-placeholder" in parse(parallel_svg(no_space)).get("class", "")
    odd = {"lr": {"float": ["low", None]}, "layers": "3..5", "opt": {"choice": ["adam"]}}
    drawn = parse(parallel_svg(view_of([trial(0, "SUCCEEDED", 1.0, lr="x")], space=odd)))
    assert groups(drawn, r"kfnb-parallel-trial-0-succeeded-best")  # odd records still draw


def test_intermediate_values_mark_pruned_trials() -> None:
    view = forty()
    root = parse(intermediate_svg(view))
    curves = groups(root, r"kfnb-intermediate-trial-.*")
    assert len(curves) == 40  # every trial logged a curve (failed ones too)
    pruned = [g for k, g in curves.items() if k.endswith("-pruned")]
    assert len(pruned) == view["counts"]["PRUNED"] and all(
        len(list(g.iter(f"{SVG}use"))) == 1 for g in pruned
    )
    assert not any(
        list(g.iter(f"{SVG}use")) for k, g in curves.items() if not k.endswith("-pruned")
    )


def test_the_same_view_gives_the_same_bytes_small_and_with_text() -> None:
    view = forty()
    for draw in (history_svg, parallel_svg, intermediate_svg):
        svg = draw(view)
        assert draw(copy.deepcopy(view)) == svg
        assert len(svg.encode()) < 60_000, (draw.__name__, len(svg.encode()))
        assert not svg.startswith("<?xml") and "<dc:date>" not in svg
        assert "<text" in svg and 'id="DejaVuSans' not in svg  # text, not glyph paths
        assert "\n*{stroke-linejoin" not in svg  # the canvas's style is scoped to the plot
    assert "toy &lt;study&gt;" in history_svg(view)


def test_matplotlib_settings_are_left_alone() -> None:
    with mpl.rc_context({"svg.fonttype": "path", "svg.hashsalt": None}):
        history_svg(forty())
        assert mpl.rcParams["svg.fonttype"] == "path"
        assert mpl.rcParams["svg.hashsalt"] is None


def test_tuning_and_its_plots_import_no_ipywidgets() -> None:
    code = (
        "import sys, kfnb, kfnb.tuning, kfnb.tuning.plots, kfnb.widgets\n"
        "assert callable(kfnb.tune) and 'ipywidgets' not in sys.modules, 'ipywidgets imported'\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported before a plot is drawn'\n"
        "kfnb.tuning.plots.history_svg({})\n"
        "assert 'matplotlib' not in sys.modules, 'a placeholder needs no matplotlib'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
