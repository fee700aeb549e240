"""``TuneLauncher(notebook_or_function, **defaults)``: a search-space editor and a Start button
that calls ``kfnb.tune`` and shows the ``StudyWidget`` below.

One row per parameter (the notebook's parameters cell, or the function's signature): a mode
(fixed, range, log range, choices), the fixed value (the default to begin with), low, high and
an optional step for ranges (an int parameter gives ``kfnb.Int``, a float ``kfnb.Float``), and
a comma-separated list for choices, each item read as the parameter's type with the command
line's rule (``params.parse_string``). Then the objective (offering the notebook's
pipeline-metrics, free text allowed), direction, algorithm, trials, parallel trials, pruning and
the tuning backend. A notebook's Kale ``katib_metadata`` fills the form first; ``defaults``
(``tune()``'s keywords: ``space``, ``params``, ``objective``, ...) go over it. ``kfnb.tune``
checks everything; an error is shown in the form, which keeps its values.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..dag import Param, Pipeline
from ..errors import KfnbError
from ..jsonio import dumps
from ..params import ParameterError, parse_string
from ..tuning.space import Choice, Distribution, Float, Int, SpaceError, parse_space
from .launcher import error_html, field_for, form_values

FIXED, RANGE, LOG, CHOICES = "fixed", "range", "log range", "choices"
NUMBERS = ("int", "float", "any")
FIELDS = ("space", "params", "objective", "direction", "algorithm", "trials", "parallel", "prune")
PASSED = ("backend", "seed", "max_failed", "options", "store", "settings")
STYLE = {"description_width": "initial"}


def _width(width: str) -> Any:
    """A layout of its own for each input (a shared one would show and hide them together)."""
    return widgets.Layout(width=width)


def modes_for(type_: str) -> list[str]:
    """The modes a parameter of ``type_`` offers: numbers take ranges, scalars choices."""
    if type_ in NUMBERS:
        return [FIXED, RANGE, LOG, CHOICES]
    if type_ in ("bool", "str"):
        return [FIXED, CHOICES]
    return [FIXED]  # list, dict: fixed only (a choice holds plain values)


def _range_guess(type_: str, default: Any) -> tuple[float, float]:
    """Where a range starts: around the default (users edit it)."""
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return (1, 10) if type_ == "int" else (0.0, 1.0)
    if type_ == "int":
        d = int(default)
        return (max(1, d // 2), max(2, d * 2)) if d > 0 else (d - 5, d + 5)
    if default > 0:
        return (default / 10, default * 10)
    return (default - 1.0, default + 1.0)


def _choice_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


class ParamRow(widgets.HBox):
    """One parameter: fixed at a value, or tuned over a range or a list of choices."""

    def __init__(self, name: str, param: Param, required: bool = False) -> None:
        self.name = name
        self.param = param
        # a required argument (no default) is typed in as text and read by its type on Start
        self.type = "any" if required else param.type
        self.integer = param.type == "int"  # a range gives kfnb.Int (else kfnb.Float)
        self.label = widgets.HTML(
            f"<b>{html.escape(name)}</b> <small>{html.escape(param.type)}</small>",
            layout=widgets.Layout(width="11em"),
        )
        self.mode = widgets.Dropdown(
            options=modes_for(param.type), value=FIXED, layout=widgets.Layout(width="8em")
        )
        self.mode.add_class(f"kfnb-TuneLauncher-mode-{name}")
        if required:
            self.fixed: Any = widgets.Text(placeholder=f"required ({param.type})")
        else:
            self.fixed = field_for(name, param.type, param.default)
        self.fixed.description = ""
        low, high = _range_guess(param.type, param.default)
        number = widgets.IntText if param.type == "int" else widgets.FloatText
        self.low = number(value=low, description="low", style=STYLE, layout=_width("9em"))
        self.high = number(value=high, description="high", style=STYLE, layout=_width("9em"))
        self.step = widgets.Text(
            value="", description="step", placeholder="none", style=STYLE, layout=_width("9em")
        )
        self.choices = widgets.Text(
            value="" if param.default is None else _choice_text(param.default),
            placeholder="a, b, c",
            layout=widgets.Layout(width="18em"),
        )
        self.mode.observe(lambda _c: self._sync(), names="value")
        super().__init__(
            [self.label, self.mode, self.fixed, self.low, self.high, self.step, self.choices],
            layout=widgets.Layout(align_items="center"),
        )
        self.add_class(f"kfnb-TuneLauncher-param-{name}")
        self._sync()

    def _sync(self) -> None:
        """Show the inputs of the chosen mode only."""
        mode = self.mode.value
        shown = {
            self.fixed: mode == FIXED,
            self.low: mode in (RANGE, LOG),
            self.high: mode in (RANGE, LOG),
            self.step: mode == RANGE,
            self.choices: mode == CHOICES,
        }
        for field, visible in shown.items():
            field.layout.display = None if visible else "none"

    def set(self, dist: Distribution) -> None:
        """Show ``dist`` (from a given space or the notebook's katib_metadata) in the row."""
        if isinstance(dist, Choice):
            self.mode.value = CHOICES
            self.choices.value = ", ".join(_choice_text(v) for v in dist.values)
            return
        if RANGE not in self.mode.options:
            raise SpaceError(f"{self.name!r} is a {self.param.type}: it takes choices, not a range")
        if self.param.type == "int" and isinstance(dist, Float):
            raise SpaceError(
                f"{self.name!r} is an int, so a float range cannot set it",
                fix=f"use kfnb.Int({dist.low!r}, {dist.high!r}) with whole numbers",
            )
        self.integer = isinstance(dist, Int)
        self.mode.value = LOG if dist.log else RANGE
        self.low.value, self.high.value = dist.low, dist.high
        step = dist.step if isinstance(dist, Float) else (dist.step if dist.step != 1 else None)
        self.step.value = "" if step is None else str(step)

    def distribution(self) -> Distribution | None:
        """What the row tunes: ``Float``/``Int``/``Choice``, or None for a fixed value."""
        mode = self.mode.value
        if mode == FIXED:
            return None
        if mode == CHOICES:
            return Choice(self._choices())
        step = self._step()
        if self.integer:
            return Int(
                int(self.low.value), int(self.high.value), step=int(step or 1), log=mode == LOG
            )
        return Float(float(self.low.value), float(self.high.value), log=mode == LOG, step=step)

    def _step(self) -> float | None:
        text = self.step.value.strip()
        if not text or self.mode.value != RANGE:
            return None
        try:
            step = float(text)
        except ValueError:
            raise SpaceError(
                f"the step of {self.name!r} must be a number, not {text!r}",
                fix="give a number, or leave it empty",
            ) from None
        if self.integer and not step.is_integer():
            raise SpaceError(f"the step of the int {self.name!r} must be a whole number")
        return step

    def _choices(self) -> list[Any]:
        shape = Pipeline("form", parameters={self.name: self.param})
        values = []
        for item in (i.strip() for i in self.choices.value.split(",")):
            if not item:
                continue
            try:
                values.append(parse_string(shape, self.name, item))
            except ParameterError as err:
                raise SpaceError(
                    f"the choices of {self.name!r}: {err.message}",
                    fix=f"list {self.param.type} values separated by commas",
                ) from None
        return values


class TuneLauncher(widgets.VBox):
    """Tune a notebook or a training function from a form: ``TuneLauncher("churn.ipynb")``."""

    def __init__(self, target: Any, **defaults: Any) -> None:
        from ..tuning import ALGORITHMS, BACKENDS

        unknown = sorted(set(defaults) - set(FIELDS) - set(PASSED))
        if unknown:
            raise KfnbError(
                f"TuneLauncher has no setting {', '.join(map(repr, unknown))}",
                fix=f"known: {', '.join(FIELDS + PASSED)}",
            )
        path = isinstance(target, (str, os.PathLike))
        self.target = str(Path(target).resolve()) if path else target
        self.passed = {k: v for k, v in defaults.items() if k in PASSED and k != "backend"}
        self.study: Any = None  # the last Study started, and its widget
        self.study_widget: Any = None
        self.rows: dict[str, ParamRow] = {}
        self.error = widgets.HTML()
        self.error.add_class("kfnb-TuneLauncher-error")
        self.title = widgets.HTML()
        self.title.add_class("kfnb-TuneLauncher-title")
        metrics, chosen = self._read_target(defaults)
        style = STYLE
        objective = chosen.get("objective") or (metrics[0] if len(metrics) == 1 else "")
        self.objective = widgets.Combobox(
            value=str(objective),
            options=metrics,
            placeholder="the metric to optimise",
            ensure_option=False,
            description="objective",
            style=style,
        )
        self.direction = widgets.Dropdown(
            options=["minimize", "maximize"],
            value=chosen.get("direction", "minimize"),
            description="direction",
            style=style,
            layout=_width("16em"),
        )
        self.algorithm = widgets.Dropdown(
            options=[(f"{a.name}: {a.help}", a.name) for a in ALGORITHMS.values()],
            value=chosen.get("algorithm", "tpe"),
            description="algorithm",
            style=style,
        )
        self.trials = widgets.BoundedIntText(
            value=int(chosen.get("trials", 20)),
            min=1,
            max=100_000,
            description="trials",
            style=style,
            layout=_width("16em"),
        )
        self.parallel = widgets.BoundedIntText(
            value=int(chosen.get("parallel", 1)),
            min=1,
            max=1024,
            description="parallel",
            style=style,
            layout=_width("16em"),
        )
        prune = chosen.get("prune")
        self.prune = widgets.Dropdown(
            options=["none", "median"],
            value="none" if prune in (None, False, "none") else "median",
            description="prune",
            style=style,
            layout=_width("16em"),
        )
        self.backend = widgets.Dropdown(
            options=list(BACKENDS),
            value=defaults.get("backend", "local"),
            description="backend",
            style=style,
            layout=_width("16em"),
        )
        self.start_button = widgets.Button(
            description="Start", icon="play", button_style="primary", disabled=not self.rows
        )
        self.start_button.add_class("kfnb-TuneLauncher-start")
        self.start_button.on_click(lambda _b: self.start())
        self.output = widgets.Output()
        self.output.add_class("kfnb-TuneLauncher-output")
        super().__init__(
            children=[
                self.title,
                widgets.VBox(list(self.rows.values())),
                widgets.HBox([self.objective, self.direction]),
                widgets.HBox([self.algorithm, self.prune]),
                widgets.HBox([self.trials, self.parallel, self.backend]),
                self.start_button,
                self.error,
                self.output,
            ]
        )
        self.add_class("kfnb-TuneLauncher")

    def _read_target(self, defaults: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """Build the rows from the target's parameters; the metric names it offers, and the
        form's starting values (its katib_metadata, then ``defaults``)."""
        from ..training.program import signature_parameters
        from ..tuning.spec import from_metadata, katib_metadata

        metrics: list[str] = []
        chosen: dict[str, Any] = {}
        required: tuple[str, ...] = ()
        try:
            if isinstance(self.target, str):
                pipeline = Pipeline.from_notebook(self.target)
                parameters = dict(pipeline.parameters)
                metrics = [m.name for m in pipeline.metrics]
                self.title.value = (
                    f"<b>{html.escape(pipeline.name)}</b> ({len(pipeline.steps)} steps): tune"
                )
                chosen = from_metadata(katib_metadata(self.target), self.target)
            else:
                parameters, required = signature_parameters(self.target)
                name = getattr(self.target, "__name__", "train")
                self.title.value = f"<b>{html.escape(name)}()</b>: tune"
        except (KfnbError, OSError, ValueError) as err:
            self.error.value = error_html(err)
            return metrics, dict(defaults)
        for name, param in parameters.items():
            self.rows[name] = ParamRow(name, param, required=name in required)
        if not self.rows:
            self.error.value = error_html(
                SpaceError(
                    "there is no parameter to tune",
                    fix="give the notebook a pipeline-parameters cell (the function arguments)",
                )
            )
        chosen.update(defaults)
        try:
            self._fill(chosen)
        except KfnbError as err:
            self.error.value = error_html(err)
        return metrics, chosen

    def _fill(self, chosen: Mapping[str, Any]) -> None:
        """Put a given space and fixed values into the rows."""
        for name, value in dict(chosen.get("params") or {}).items():
            if name not in self.rows:
                raise SpaceError(f"params sets {name!r}, which is no parameter here")
            row = self.rows[name]
            text = isinstance(row.fixed, widgets.Text) and row.type in ("list", "dict", "any")
            row.fixed.value = value if not text or isinstance(value, str) else dumps(value)
        if chosen.get("space") is None:
            return
        space = chosen["space"]
        if isinstance(space, (str, os.PathLike)):
            from ..tuning.space import load_space_file

            space = load_space_file(os.fspath(space))
        for name, dist in parse_space(space).items():
            if name not in self.rows:
                raise SpaceError(
                    f"the space tunes {name!r}, which is no parameter here",
                    fix=f"its parameters: {', '.join(self.rows) or 'none'}",
                )
            self.rows[name].set(dist)

    # --- reading the form ------------------------------------------------------------------
    def space(self) -> dict[str, Distribution]:
        """The search space the rows describe (a ``SpaceError`` names a row it cannot read)."""
        space = {}
        for name, row in self.rows.items():
            dist = row.distribution()
            if dist is not None:
                space[name] = dist
        return space

    def fixed(self) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The fixed parameters: typed values, and the ``(name, text)`` of those read as the
        command line reads them (``launcher.form_values``)."""
        rows = {n: r for n, r in self.rows.items() if r.mode.value == FIXED}
        return form_values(
            {n: r.fixed for n, r in rows.items()}, {n: r.type for n, r in rows.items()}
        )

    def how(self) -> dict[str, Any]:
        """``kfnb.tune``'s keywords from the form (the space and fixed parameters aside)."""
        return {
            "objective": self.objective.value.strip() or None,
            "direction": self.direction.value,
            "algorithm": self.algorithm.value,
            "trials": self.trials.value,
            "parallel": self.parallel.value,
            "prune": None if self.prune.value == "none" else self.prune.value,
            "backend": self.backend.value,
        }

    def start(self) -> Any:
        """What Start does: the ``Study`` (shown live below), or None (the error is shown and
        the form keeps its values)."""
        from IPython.display import display

        from ..tuning import tune
        from .study import StudyWidget

        self.error.value = ""
        try:
            space = self.space()
            typed, texts = self.fixed()
            study = tune(
                self.target,
                space,
                params=typed,
                param_strings=texts,
                **self.how(),
                **self.passed,
            )
        except KfnbError as err:
            self.error.value = error_html(err)
            return None
        self.study = study
        if self.study_widget is not None:
            self.study_widget.close()
        self.study_widget = StudyWidget(study)
        self.output.clear_output()
        with self.output:
            display(self.study_widget)
        return study
