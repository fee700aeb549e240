"""Parameter values for a run, checked against the pipeline's parameters cell.

Values arrive as typed Python values (``kfnb.run(params=...)``, a YAML file) or as strings from
the command line (``-p seed 7``). Strings are converted to the parameter's declared type; typed
values must already fit it (an int is accepted for a float). Anything else is an error naming the
parameter, its type and the value, so nothing runs with a value the notebook did not expect.

Numbers must be finite: NaN, infinities and numbers too long to be a float (``1e999`` overflows
to infinity) are refused wherever they come from, also inside lists and dicts, because a run's
parameters are stored and shown as JSON, which has no NaN, and a notebook given NaN fails far
from the cause.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .dag import Pipeline
from .errors import KfnbError

TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0"}


class ParameterError(KfnbError):
    """A parameter value that the pipeline cannot take."""


class NotFiniteError(ParameterError):
    """A number parameter given NaN or an infinity (or a number that overflows to one)."""


def resolve_params(
    pipeline: Pipeline,
    values: Mapping[str, Any] | None = None,
    strings: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """All parameter values of a run: defaults, then ``values``, then CLI ``strings``."""
    result = {name: p.default for name, p in pipeline.parameters.items()}
    for name, value in (values or {}).items():
        result[name] = check_value(pipeline, name, value)
    for name, text in strings:
        result[name] = parse_string(pipeline, name, text)
    return result


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) file of ``name: value`` pairs."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError as err:
        raise ParameterError(f"no parameters file at {str(p)!r}", fix="check the path") from err
    except yaml.YAMLError as err:
        raise ParameterError(f"{str(p)!r} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(
            f"{str(p)!r} must hold a mapping of parameter names to values, "
            f"not a {type(data).__name__}"
        )
    return {str(k): v for k, v in data.items()}


def _param(pipeline: Pipeline, name: str) -> Any:
    if name not in pipeline.parameters:
        known = list(pipeline.parameters)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        listed = ", ".join(known) or "none (the notebook has no parameters cell)"
        hint = f"did you mean {close[0]!r}?" if close else f"known parameters: {listed}"
        raise ParameterError(f"pipeline {pipeline.name!r} has no parameter {name!r}", fix=hint)
    return pipeline.parameters[name]


def check_value(pipeline: Pipeline, name: str, value: Any) -> Any:
    """A typed value for ``name``, or a ``ParameterError``."""
    param = _param(pipeline, name)
    kind = param.type
    ok = {
        "any": True,
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, (list, tuple)),
        "dict": isinstance(value, dict),
    }[kind]
    if not ok:
        raise ParameterError(
            f"parameter {name!r} is {_article(kind)} {kind} (default {param.default!r}), not "
            f"{_article(type(value).__name__)} {type(value).__name__} ({value!r})",
            fix=f"pass {_article(kind)} {kind}",
        )
    if kind == "float":
        value = _to_float(name, value)
    _check_finite(name, value)
    if kind == "list":
        return list(value)
    return value


def _to_float(name: str, value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        raise _not_finite(name, value) from None


def _check_finite(name: str, value: Any) -> None:
    """Refuse NaN and infinities, also inside lists and dicts (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _not_finite(name, value)
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_finite(name, item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_finite(name, item)


def _not_finite(name: str, value: Any) -> NotFiniteError:
    shown = repr(value) if not isinstance(value, int) else f"an integer of {len(str(value))} digits"
    return NotFiniteError(
        f"parameter {name!r} must be a finite number, not {shown}",
        fix="give a finite number, e.g. 0.5",
    )


EXAMPLES = {"int": "7", "float": "0.5", "bool": "true", "list": "[1, 2]", "dict": '{"a": 1}'}


def parse_string(pipeline: Pipeline, name: str, text: str) -> Any:
    """Convert a command-line string to the type of parameter ``name``."""
    param = _param(pipeline, name)
    kind = param.type
    try:
        value = _convert(pipeline, name, kind, text)
    except NotFiniteError:
        raise
    except (ValueError, yaml.YAMLError, ParameterError) as err:
        example = EXAMPLES.get(kind, json.dumps(param.default))
        raise ParameterError(
            f"parameter {name!r} is {_article(kind)} {kind} (default {param.default!r}); "
            f"{text!r} is not {_article(kind)} {kind}",
            fix=f"pass e.g. -p {name} {example}",
        ) from err
    _check_finite(name, value)
    return value


def _convert(pipeline: Pipeline, name: str, kind: str, text: str) -> Any:
    if kind == "str":
        return text
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        low = text.strip().lower()
        if low in TRUE | FALSE:
            return low in TRUE
        raise ValueError(text)
    if kind in ("list", "dict"):
        return check_value(pipeline, name, yaml.safe_load(text))
    return yaml.safe_load(text)  # "any": the YAML reading of the text


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
