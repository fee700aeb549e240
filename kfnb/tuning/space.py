"""The search space of a study: ``Float``, ``Int`` and ``Choice`` per tuned parameter.

A space is a mapping of parameter names to distributions. It is written three ways, all read
here into the same objects:

- in Python: ``{"C": kfnb.Float(1e-3, 10, log=True), "k": kfnb.Int(3, 25)}``;
- the short form of ``space.yaml``: ``C: {float: [0.001, 10], log: true}``,
  ``k: {int: [3, 25], step: 1}``, ``kernel: {choice: [rbf, linear]}``;
- Katib's ``parameters`` list (as in Kale's ``katib_metadata``): ``{name, parameterType: int |
  double | categorical | discrete, feasibleSpace: {min, max, step, list, distribution}}``.

Each distribution suggests a value to an Optuna trial and writes itself as a Katib parameter
(values as strings; categorical values in ``feasibleSpace.list``). ``check_space`` holds a space
against what it tunes (a pipeline's parameters cell, a function's signature): a name that is not
there, or a distribution whose values the parameter's type does not take, is an error naming it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dag import Param, Pipeline
from ..errors import KfnbError
from ..params import ParameterError, check_value, read_yaml_file

SCALAR = (str, int, float, bool, type(None))


class SpaceError(KfnbError):
    """A search space that cannot be searched, or does not fit what it tunes."""


def _number(name: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # Katib writes numbers as strings
        except (TypeError, ValueError):
            raise SpaceError(
                f"{what} of {name!r} must be a number, not {value!r}",
                fix="e.g. {float: [0.001, 10]}",
            ) from None
    if not math.isfinite(value):
        raise SpaceError(f"{what} of {name!r} must be finite, not {value!r}")
    return value


@dataclass(frozen=True)
class Float:
    """A real parameter in ``[low, high]``; ``log``: sampled on a log scale; ``step``: only
    multiples of ``step`` above ``low`` (needed by grid search)."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    kind = "float"

    def check(self, name: str) -> None:
        low, high = _number(name, self.low, "low"), _number(name, self.high, "high")
        if low > high:
            raise SpaceError(f"{name!r}: low {low!r} is above high {high!r}", fix="swap them")
        if self.log and low <= 0:
            raise SpaceError(
                f"{name!r}: a log scale needs low > 0, not {low!r}", fix="raise low, or drop log"
            )
        if self.step is not None and _number(name, self.step, "step") <= 0:
            raise SpaceError(f"{name!r}: step must be positive, not {self.step!r}")
        if self.step is not None and self.log:
            raise SpaceError(f"{name!r}: step and log cannot be combined", fix="drop one of them")

    def suggest(self, trial: Any, name: str) -> float:
        return float(
            trial.suggest_float(
                name, float(self.low), float(self.high), step=self.step, log=self.log
            )
        )

    def grid(self, name: str) -> list[Any]:
        if self.step is None:
            raise SpaceError(
                f"grid search needs a step for the float {name!r}",
                fix=f"give it one, e.g. kfnb.Float({self.low!r}, {self.high!r}, step=...), or use "
                "another algorithm (tpe, random)",
            )
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"float": [self.low, self.high]}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def to_katib(self, name: str) -> dict[str, Any]:
        space: dict[str, Any] = {"min": _text(self.low), "max": _text(self.high)}
        if self.step is not None:
            space["step"] = _text(self.step)
        if self.log:
            space["distribution"] = "logUniform"
        return {"name": name, "parameterType": "double", "feasibleSpace": space}


@dataclass(frozen=True)
class Int:
    """An integer parameter in ``[low, high]`` (both included), every ``step``; ``log``: sampled
    on a log scale."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    kind = "int"

    def check(self, name: str) -> None:
        for what, value in (("low", self.low), ("high", self.high), ("step", self.step)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpaceError(
                    f"{what} of the int {name!r} must be an integer, not {value!r}",
                    fix="use kfnb.Float for a real-valued parameter",
                )
        if self.low > self.high:
            raise SpaceError(f"{name!r}: low {self.low} is above high {self.high}", fix="swap them")
        if self.step < 1:
            raise SpaceError(f"{name!r}: step must be at least 1, not {self.step}")
        if self.log and (self.low < 1 or self.step != 1):
            raise SpaceError(
                f"{name!r}: a log scale needs low >= 1 and step 1",
                fix="raise low, or drop log",
            )

    def suggest(self, trial: Any, name: str) -> int:
        return int(trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log))

    def grid(self, name: str) -> list[Any]:
        return list(range(self.low, self.high + 1, self.step))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"int": [self.low, self.high]}
        if self.step != 1:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out

    def to_katib(self, name: str) -> dict[str, Any]:
        space: dict[str, Any] = {"min": str(self.low), "max": str(self.high)}
        if self.step != 1:
            space["step"] = str(self.step)
        if self.log:
            space["distribution"] = "logUniform"
        return {"name": name, "parameterType": "int", "feasibleSpace": space}


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (strings, numbers, booleans or None)."""

    values: tuple[Any, ...]

    kind = "choice"

    def __init__(self, values: Sequence[Any]) -> None:
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise SpaceError(f"a choice needs a list of values, not {values!r}")
        object.__setattr__(self, "values", tuple(values))

    def check(self, name: str) -> None:
        if not self.values:
            raise SpaceError(f"the choice {name!r} has no values", fix="list at least one")
        for value in self.values:
            if not isinstance(value, SCALAR) or (
                isinstance(value, float) and not math.isfinite(value)
            ):
                raise SpaceError(
                    f"the choice {name!r} holds {value!r}: values are strings, numbers, "
                    "booleans or null",
                    fix="list plain values",
                )
        if len({repr(v) for v in self.values}) != len(self.values):
            raise SpaceError(f"the choice {name!r} lists a value twice", fix="list each once")

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))

    def grid(self, name: str) -> list[Any]:
        return list(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"choice": list(self.values)}

    def to_katib(self, name: str) -> dict[str, Any]:
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values)
        return {
            "name": name,
            "parameterType": "discrete" if numbers else "categorical",
            "feasibleSpace": {"list": [_text(v) for v in self.values]},
        }


Distribution = Float | Int | Choice
Space = dict[str, Distribution]


def _text(value: Any) -> str:
    """How Katib spells a value (all its values are strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


def parse_space(data: Any, where: str = "the search space") -> Space:
    """A space from Python (distributions or short-form dicts), the short form, or Katib's
    ``parameters`` list (also inside a mapping under ``parameters``)."""
    if isinstance(data, Mapping) and set(data) == {"parameters"}:
        data = data["parameters"]
    if isinstance(data, list):
        space = dict(_from_katib(item, where) for item in data)
        if len(space) != len(data):
            raise SpaceError(f"{where} names a parameter twice", fix="list each parameter once")
    elif isinstance(data, Mapping):
        space = {str(name): _short(str(name), value) for name, value in data.items()}
    else:
        raise SpaceError(
            f"{where} must map parameter names to ranges, not {type(data).__name__}",
            fix='e.g. {"C": kfnb.Float(0.001, 10, log=True), "k": kfnb.Int(3, 25)}',
        )
    if not space:
        raise SpaceError(f"{where} is empty", fix="give at least one parameter to tune")
    for name, dist in space.items():
        dist.check(name)
    return space


def load_space_file(path: str | Path) -> Space:
    """``space.yaml``: the short form or Katib's ``parameters`` list."""
    p = Path(path)
    fix = "map each tuned parameter to its range, e.g. `lr: {float: [0.0001, 0.1], log: true}`"
    try:
        data, _ = read_yaml_file(p, "search space file", fix)
    except ParameterError as err:  # names the file and the line, never what it holds
        raise SpaceError(err.message, fix=err.fix) from None
    return parse_space(data, where=str(p))


SHORT_KEYS = {"float": Float, "int": Int, "choice": Choice}


def _short(name: str, value: Any) -> Distribution:
    if isinstance(value, (Float, Int, Choice)):
        return value
    example = "{float: [0.001, 10], log: true}, {int: [3, 25]} or {choice: [a, b]}"
    if not isinstance(value, Mapping):
        raise SpaceError(
            f"{name!r}: {value!r} is not a range",
            fix=f"write e.g. kfnb.Float(0.001, 10), or in a file {example}",
        )
    kinds = [k for k in SHORT_KEYS if k in value]
    if len(kinds) != 1:
        raise SpaceError(f"{name!r} must say exactly one of float, int or choice", fix=example)
    kind = kinds[0]
    allowed = {"choice": {"choice"}}.get(kind, {kind, "log", "step"})
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise SpaceError(
            f"{name!r}: unknown key{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}",
            fix=f"a {kind} takes {', '.join(sorted(allowed))}",
        )
    if kind == "choice":
        return Choice(value["choice"])
    bounds = value[kind]
    if not isinstance(bounds, Sequence) or isinstance(bounds, str) or len(bounds) != 2:
        raise SpaceError(f"{name!r}: {kind} takes [low, high], not {bounds!r}", fix=example)
    if kind == "int":
        return Int(bounds[0], bounds[1], step=value.get("step", 1), log=bool(value.get("log")))
    return Float(
        _number(name, bounds[0], "low"),
        _number(name, bounds[1], "high"),
        log=bool(value.get("log")),
        step=value.get("step"),
    )


def _from_katib(item: Any, where: str) -> tuple[str, Distribution]:
    if not isinstance(item, Mapping) or "name" not in item:
        raise SpaceError(
            f"{where}: each Katib parameter is {{name, parameterType, feasibleSpace}}, not {item!r}"
        )
    name = str(item["name"])
    kind = item.get("parameterType")
    feasible = item.get("feasibleSpace") or {}
    if kind in ("int", "double"):
        if "min" not in feasible or "max" not in feasible:
            raise SpaceError(f"{name!r}: feasibleSpace needs min and max", where=where)
        log = feasible.get("distribution") in ("logUniform", "logNormal")
        step = feasible.get("step")
        if kind == "int":
            try:
                low, high = int(str(feasible["min"])), int(str(feasible["max"]))
                step_value = int(str(step)) if step not in (None, "") else 1
            except ValueError:
                raise SpaceError(
                    f"{name!r} is an int parameter: min, max and step must be integers, "
                    f"not {feasible!r}"
                ) from None
            return name, Int(low, high, step=step_value, log=log)
        return name, Float(
            _number(name, feasible["min"], "min"),
            _number(name, feasible["max"], "max"),
            log=log,
            step=_number(name, step, "step") if step not in (None, "") else None,
        )
    if kind in ("categorical", "discrete"):
        values = feasible.get("list")
        if not isinstance(values, list):
            raise SpaceError(
                f"{name!r}: a {kind} parameter lists its values in feasibleSpace.list",
                fix="e.g. feasibleSpace: {list: [rbf, linear]}",
            )
        if kind == "discrete":
            values = [_katib_number(name, v) for v in values]
        return name, Choice(values)
    raise SpaceError(
        f"{name!r}: unknown parameterType {kind!r}",
        fix="Katib's types are int, double, categorical and discrete",
    )


def _katib_number(name: str, value: Any) -> int | float:
    number = _number(name, value, "a discrete value")
    return int(number) if float(number).is_integer() and "." not in str(value) else number


def space_to_dict(space: Mapping[str, Distribution]) -> dict[str, Any]:
    """The short form: what a study's record keeps and ``parse_space`` reads back."""
    return {name: dist.to_dict() for name, dist in space.items()}


def check_space(
    space: Mapping[str, Distribution], parameters: Mapping[str, Param], owner: str
) -> None:
    """Every tuned name must be one of ``parameters`` (``owner``: "pipeline 'churn'",
    "train()"), and every value its distribution can give must fit the parameter's type."""
    shape = Pipeline(owner, parameters=dict(parameters))
    for name, dist in space.items():
        if name not in parameters:
            known = list(parameters)
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            listed = ", ".join(known) or "none"
            raise SpaceError(
                f"the search space tunes {name!r}, but {owner} has no parameter {name!r}",
                fix=(f"did you mean {close[0]!r}? " if close else "") + f"its parameters: {listed}",
            )
        param = parameters[name]
        if param.type == "any":
            continue
        if isinstance(dist, Float) and param.type != "float":
            raise SpaceError(
                f"{name!r} is {_article(param.type)} {param.type} (default {param.default!r}), "
                "so a float range cannot set it",
                fix=f"use kfnb.Int({_int_hint(dist)}) for an int"
                if param.type == "int"
                else f"use kfnb.Choice([...]) of {param.type} values",
            )
        if isinstance(dist, Int) and param.type not in ("int", "float"):
            raise SpaceError(
                f"{name!r} is {_article(param.type)} {param.type} (default {param.default!r}), "
                "so an int range cannot set it",
                fix=f"use kfnb.Choice([...]) of {param.type} values",
            )
        if isinstance(dist, Choice):
            for value in dist.values:
                try:
                    check_value(shape, name, value)
                except ParameterError as err:
                    raise SpaceError(
                        f"the choice {name!r} holds {value!r}: {err.message}", fix=err.fix
                    ) from None


def _int_hint(dist: Float) -> str:
    return f"{math.ceil(dist.low)}, {math.floor(dist.high)}"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def grid_size(space: Mapping[str, Distribution]) -> int:
    """How many points a grid search over ``space`` has."""
    size = 1
    for name, dist in space.items():
        size *= len(dist.grid(name))
    return size
