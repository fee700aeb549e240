"""Study plots as SVG strings, drawn from a study view (``view.study_view``) with matplotlib.

One drawing for every surface (the ``StudyWidget``, the panel through REST, a saved notebook):

- ``history_svg``: the objective per trial number, succeeded trials as points, pruned ones at
  their last intermediate value, failed ones as marks on the axis, running ones hollow at their
  latest value, and the best value so far as a step line;
- ``parallel_svg``: parallel coordinates, one vertical axis per tuned parameter (log axes for log
  ranges, one tick per value for choices, read from the study's space) and one for the
  objective, one line per succeeded trial coloured by its value, the best trial on top;
- ``intermediate_svg``: each trial's objective over its steps, pruned trials marked where they
  were stopped.

Local and Katib studies are recorded alike, so they draw alike. The figures are made with
``matplotlib.figure.Figure`` and the SVG canvas (never ``pyplot`` and its global figures); text
stays text (``svg.fonttype: none``), ids are hashed with a fixed salt and no date is written, so
the same view gives the same bytes. A view with nothing to draw gives a small placeholder SVG.
Every artist that stands for a trial carries an id (``kfnb-history-trial-3-pruned``), for tests
and for whoever styles the plots.
"""

from __future__ import annotations

import html
import io
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import MissingDependencyError
from ..format import STATUS_COLORS
from .view import best_so_far

BEST = "#37474f"  # the best-so-far line and the best trial's ring
GRID = "#eeeeee"
TEXT = "#424242"
SVG_RC = {"svg.fonttype": "none", "svg.hashsalt": "kfnb-study-plot", "svg.image_inline": True}
MAX_CATEGORY_LABEL = 14  # characters of a choice shown on its axis

_rc_lock = threading.Lock()  # the widget's follower threads may draw at the same time


# -- the public plots ----------------------------------------------------------------------
def history_svg(view: Mapping[str, Any]) -> str:
    """The optimisation history of the study ``view``: objective value per trial number."""
    trials = list(view.get("trials") or [])
    objective, direction = _objective(view)
    points = [(t, _shown_value(t)) for t in trials]
    if not any(v is not None for _, v in points) and not _failed(trials):
        return placeholder_svg("history", "no trial has a value yet")
    fig = _figure(6.0, 3.2)
    ax = fig.add_subplot()
    _style(ax)
    for trial, value in points:
        number, status = trial.get("number"), str(trial.get("status"))
        if value is None or number is None:
            continue
        fill, ink = STATUS_COLORS.get(status, STATUS_COLORS["PENDING"])
        style: dict[str, Any] = {"marker": "o", "markersize": 5, "color": fill, "mec": fill}
        if status == "PRUNED":
            style = {"marker": "v", "markersize": 6, "color": fill, "mec": ink, "mew": 0.8}
        elif status != "SUCCEEDED":  # running (or cancelled): hollow, at its latest value
            style = {"marker": "o", "markersize": 5, "color": "none", "mec": fill, "mew": 1.2}
        ax.plot([number], [value], linestyle="none", gid=_gid("history", trial), **style)
    for trial in _failed(trials):  # no value: a mark on the x axis, at its number
        ax.plot(
            [trial["number"]],
            [0.03],
            transform=ax.get_xaxis_transform(),
            marker="x",
            markersize=5,
            color=STATUS_COLORS["FAILED"][0],
            linestyle="none",
            clip_on=False,
            gid=_gid("history", trial),
        )
    steps = best_so_far(trials, direction)
    if steps:
        last = max(t["number"] for t in trials if t.get("number") is not None)
        xs = [s[0] for s in steps] + [max(last, steps[-1][0])]
        ys = [s[1] for s in steps] + [steps[-1][1]]
        ax.step(xs, ys, where="post", color=BEST, linewidth=1.2, gid="kfnb-history-best-so-far")
    best = view.get("best")
    if best and best.get("value") is not None and best.get("number") is not None:
        ax.plot(
            [best["number"]],
            [best["value"]],
            marker="o",
            markersize=11,
            color="none",
            mec=BEST,
            mew=1.2,
            linestyle="none",
            gid="kfnb-history-best",
        )
    numbers = [t["number"] for t in trials if t.get("number") is not None]
    if numbers:
        ax.set_xlim(min(numbers) - 0.7, max(numbers) + 0.7)
    _integer_ticks(ax)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{objective} ({direction})")
    ax.set_title(_title(view, "optimisation history"), loc="left", fontsize=9, color=TEXT)
    _legend(ax, trials, bool(steps))
    return _svg(fig, "history")


def parallel_svg(view: Mapping[str, Any]) -> str:
    """Parallel coordinates of the study ``view``: one axis per tuned parameter and one for the
    objective, one line per succeeded trial coloured by its value, the best trial on top."""
    objective, direction = _objective(view)
    space = dict((view.get("study") or {}).get("space") or {})
    scored = [
        t
        for t in view.get("trials") or []
        if t.get("status") == "SUCCEEDED" and _finite(t.get("value"))
    ]
    axes = [_Axis.of(name, short) for name, short in space.items()]
    scored = [t for t in scored if all(a.name in (t.get("params") or {}) for a in axes)]
    if not scored or not axes:
        why = "no succeeded trial yet" if axes else "the study's space is not recorded"
        return placeholder_svg("parallel", why)
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    values = [float(t["value"]) for t in scored]
    low, high = min(values), max(values)
    if low == high:
        low, high = low - 0.5 * (abs(low) or 1.0), high + 0.5 * (abs(high) or 1.0)
    axes.append(_Axis(objective, "objective", low, high))
    # better is darker: low values for minimize, high values for maximize
    cmap = colormaps["viridis" if direction == "minimize" else "viridis_r"]
    norm = Normalize(low, high)
    fig = _figure(max(4.6, 1.25 * len(axes) + 1.6), 3.4)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.08, right=0.86, top=0.84, bottom=0.1)
    xs = list(range(len(axes)))
    ax.set_xlim(-0.05, len(axes) - 0.95)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_xticks(xs, [_short(a.name, 18) for a in axes], fontsize=8, color=TEXT)
    ax.tick_params(axis="x", length=0, pad=6)
    ax.xaxis.set_ticks_position("top")
    for spine in ax.spines.values():
        spine.set_visible(False)
    best = view.get("best") or {}
    for trial in sorted(scored, key=lambda t: t.get("number") or 0):
        ys = [a.position(trial["params"][a.name]) for a in axes[:-1]]
        ys.append(axes[-1].position(float(trial["value"])))
        is_best = trial.get("id") == best.get("id")
        ax.plot(
            xs,
            ys,
            color="#e53935" if is_best else cmap(norm(float(trial["value"]))),
            linewidth=2.4 if is_best else 1.0,
            alpha=1.0 if is_best else 0.75,
            zorder=3 if is_best else 2,
            gid=_gid("parallel", trial) + ("-best" if is_best else ""),
        )
    for x, axis in zip(xs, axes, strict=True):
        axis.draw(ax, x, "right" if axis.kind == "objective" else "left")
    bar = fig.colorbar(
        ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.04, pad=0.1, aspect=30
    )
    bar.solids.set_rasterized(True)  # one small image, not a path per colour
    bar.set_label(f"{objective} ({direction})", fontsize=8, color=TEXT)
    bar.ax.tick_params(labelsize=7, colors=TEXT)
    bar.ax.set_gid("kfnb-parallel-colorbar")
    fig.suptitle(
        _title(view, f"{len(scored)} succeeded trials, best in red"),
        x=0.02,
        ha="left",
        fontsize=9,
        color=TEXT,
    )
    return _svg(fig, "parallel")


def intermediate_svg(view: Mapping[str, Any]) -> str:
    """Each trial's objective over its steps (what it logged with a step index); pruned
    trials end in a mark where the pruner stopped them."""
    objective, direction = _objective(view)
    curves = [t for t in view.get("trials") or [] if t.get("intermediate")]
    if not curves:
        return placeholder_svg("intermediate", "no trial logged values over steps")
    fig = _figure(6.0, 3.2)
    ax = fig.add_subplot()
    _style(ax)
    for trial in sorted(curves, key=lambda t: t.get("number") or 0):
        status = str(trial.get("status"))
        fill, ink = STATUS_COLORS.get(status, STATUS_COLORS["PENDING"])
        steps = [p[0] for p in trial["intermediate"]]
        values = [p[1] for p in trial["intermediate"]]
        pruned = status == "PRUNED"
        ax.plot(
            steps,
            values,
            color=ink if pruned else fill,
            linewidth=1.0,
            alpha=0.6 if pruned else 0.8,
            linestyle="--" if pruned else "-",
            marker="v" if pruned else None,
            markevery=[len(steps) - 1] if pruned else None,
            markersize=6,
            markerfacecolor=fill,
            markeredgecolor=ink,
            gid=_gid("intermediate", trial),
        )
    _integer_ticks(ax)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{objective} ({direction})")
    ax.set_title(_title(view, "intermediate values"), loc="left", fontsize=9, color=TEXT)
    return _svg(fig, "intermediate")


def placeholder_svg(kind: str, text: str, width: int = 432, height: int = 120) -> str:
    """What a plot shows when there is nothing to draw yet: a frame and a sentence."""
    return (
        f'<svg class="kfnb-study-plot kfnb-study-{kind} kfnb-study-placeholder" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}pt" height="{height}pt" '
        f'viewBox="0 0 {width} {height}" data-kind="{kind}">'
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="none" '
        f'stroke="{GRID}"/><text x="{width / 2:g}" y="{height / 2:g}" text-anchor="middle" '
        f'font-family="sans-serif" font-size="11" fill="#9e9e9e">{html.escape(text)}</text></svg>'
    )


# -- axes of the parallel coordinates ------------------------------------------------------
class _Axis:
    """One vertical axis: a parameter's range (linear, log, or the values of a choice) or the
    objective's; ``position`` maps a value to [0, 1]."""

    def __init__(
        self,
        name: str,
        kind: str,
        low: float = 0.0,
        high: float = 1.0,
        log: bool = False,
        values: Sequence[Any] = (),
    ) -> None:
        self.name, self.kind, self.log, self.values = name, kind, log, list(values)
        self.low, self.high = low, high

    @classmethod
    def of(cls, name: str, short: Any) -> _Axis:
        """The axis of a parameter from its short form (``{float: [a, b], log: true}``)."""
        short = dict(short) if isinstance(short, Mapping) else {}
        if "choice" in short:
            return cls(name, "choice", values=list(short["choice"] or []))
        kind = "int" if "int" in short else "float"
        try:
            low, high = (float(b) for b in short[kind])
        except (KeyError, TypeError, ValueError):  # not a range kfnb wrote: a plain 0..1 axis
            return cls(name, kind)
        log = bool(short.get("log")) and low > 0
        return cls(name, kind, low, high, log)

    def _unit(self, value: float) -> float:
        low, high = self.low, self.high
        if self.log:
            value, low, high = math.log10(max(value, 1e-300)), math.log10(low), math.log10(high)
        return 0.5 if high == low else (value - low) / (high - low)

    def position(self, value: Any) -> float:
        if self.kind == "choice":
            index = _index(self.values, value)
            count = len(self.values)
            return 0.5 if count < 2 or index is None else index / (count - 1)
        try:
            number = float(value)
        except (TypeError, ValueError):
            return 0.5
        return min(1.0, max(0.0, self._unit(number)))

    def draw(self, ax: Any, x: int, side: str = "left") -> None:
        """A vertical axis at ``x`` with this axis's scale and ticks (labels on ``side``)."""
        twin = ax.twinx()
        twin.set_gid(f"kfnb-parallel-axis-{_id_part(self.name)}-{self.kind}")
        for where, spine in twin.spines.items():
            spine.set_visible(where == side)
        twin.spines[side].set_position(("data", x))
        twin.spines[side].set_color("#9e9e9e")
        twin.yaxis.set_ticks_position(side)
        twin.yaxis.set_label_position(side)
        twin.tick_params(axis="y", labelsize=7, colors=TEXT, length=3, pad=2)
        self._scale(twin)
        for label in twin.get_yticklabels():  # readable over the lines that cross it
            label.set_bbox({"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.4})

    def _scale(self, twin: Any) -> None:
        from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

        if self.kind == "choice":
            count = len(self.values)
            twin.set_ylim(0, 1)
            positions = [0.5] if count < 2 else [i / (count - 1) for i in range(count)]
            twin.yaxis.set_major_locator(FixedLocator(positions))
            twin.set_yticklabels([_short(_text(v), MAX_CATEGORY_LABEL) for v in self.values])
            return
        low, high = self.low, self.high
        if low == high:
            low, high = (low / 2, high * 2) if self.log else (low - 0.5, high + 0.5)
        if self.log:
            twin.set_yscale("log")
            twin.yaxis.set_minor_locator(NullLocator())
        twin.set_ylim(low, high)
        if not self.log:
            twin.yaxis.set_major_locator(MaxNLocator(5, integer=self.kind == "int"))


def _index(values: Sequence[Any], value: Any) -> int | None:
    for i, v in enumerate(values):
        if v == value and type(v) is type(value):
            return i
    for i, v in enumerate(values):  # a Katib study records values as text
        if _text(v) == _text(value):
            return i
    return None


# -- helpers -------------------------------------------------------------------------------
def _objective(view: Mapping[str, Any]) -> tuple[str, str]:
    study = view.get("study") or {}
    direction = "maximize" if study.get("direction") == "maximize" else "minimize"
    return str(study.get("objective") or "objective"), direction


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown_value(trial: Mapping[str, Any]) -> float | None:
    """Where a trial sits in the history: its value, else (pruned, running) its last
    intermediate value."""
    if trial.get("status") == "SUCCEEDED":
        return float(trial["value"]) if _finite(trial.get("value")) else None
    if trial.get("status") in ("PRUNED", "RUNNING") and trial.get("intermediate"):
        last = trial["intermediate"][-1][1]
        return float(last) if _finite(last) else None
    return None


def _failed(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [t for t in trials if t.get("status") == "FAILED" and t.get("number") is not None]


def _gid(plot: str, trial: Mapping[str, Any]) -> str:
    return f"kfnb-{plot}-trial-{trial.get('number')}-{str(trial.get('status')).lower()}"


def _id_part(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _title(view: Mapping[str, Any], what: str) -> str:
    return f"{view.get('name') or 'study'}: {what}"


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "tune", "the study plots") from None
    return Figure(figsize=(width, height), dpi=72, facecolor="white", layout=None)


def _style(ax: Any) -> None:
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=8, colors=TEXT)
    ax.xaxis.label.set_size(9)
    ax.yaxis.label.set_size(9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))


def _legend(ax: Any, trials: Sequence[Mapping[str, Any]], with_best: bool) -> None:
    from matplotlib.lines import Line2D

    handles = []
    counts = {s: sum(1 for t in trials if t.get("status") == s) for s in STATUS_COLORS}
    for status, marker in (("SUCCEEDED", "o"), ("PRUNED", "v"), ("FAILED", "x")):
        if counts.get(status):
            fill, ink = STATUS_COLORS[status]
            edge = ink if status == "PRUNED" else fill
            handles.append(
                Line2D([], [], linestyle="none", marker=marker, color=fill, mec=edge, label=status)
            )
    if with_best:
        handles.append(Line2D([], [], color=BEST, label="best so far"))
    if handles:
        ax.legend(
            handles=handles,
            fontsize=7,
            frameon=False,
            numpoints=1,
            ncols=len(handles),
            loc="upper center",  # under the axis: the title keeps the line above it
            bbox_to_anchor=(0.5, -0.16),
            borderaxespad=0.2,
            handletextpad=0.3,
            columnspacing=1.0,
        )


@contextmanager
def _svg_settings() -> Iterator[None]:
    """The SVG writer's settings for one drawing: set, then put back as they were (only these
    keys, so a user's own matplotlib settings are left alone)."""
    import matplotlib as mpl

    rc: Any = mpl.rcParams
    with _rc_lock:
        before = {key: rc[key] for key in SVG_RC}
        try:
            rc.update(SVG_RC)
            yield
        finally:
            rc.update(before)


def _svg(fig: Any, kind: str) -> str:
    """The figure as an SVG element for inline HTML: no XML prolog, no date, the canvas's
    default style scoped to this plot (it would restyle the whole page otherwise)."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    FigureCanvasSVG(fig)
    buffer = io.StringIO()
    with _svg_settings():
        fig.savefig(
            buffer,
            format="svg",
            bbox_inches="tight",
            pad_inches=0.06,
            metadata={"Date": None, "Creator": "kfnb"},
        )
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = text.replace(
        "<svg ", f'<svg class="kfnb-study-plot kfnb-study-{kind}" data-kind="{kind}" ', 1
    )
    return text.replace("*{stroke-linejoin", f".kfnb-study-{kind} *{{stroke-linejoin", 1)
