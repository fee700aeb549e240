"""Turning user values into what the store keeps: metric values as floats, the rest as JSON.

A metric is a real number: ``bool``, ``int``, ``float``, any ``numbers.Real`` and scalars of
numpy or torch (anything with ``.item()`` and an empty ``shape``). NaN and infinities are allowed.
Parameters, step errors, specs and event data are stored as JSON written by ``kfnb.jsonio``
(standard JSON: a non-finite float is ``null``; a value JSON cannot hold is stored as its nearest
JSON form, else its ``repr``).
"""

from __future__ import annotations

import json
import numbers
from typing import Any

from ..jsonio import dumps
from .errors import MetricValueError


def metric_value(name: str, value: Any) -> float:
    """``value`` as a float, or ``MetricValueError`` naming the metric and the type."""
    if not isinstance(name, str) or not name:
        raise MetricValueError(f"a metric name must be a non-empty string, got {name!r}")
    number = value
    if not isinstance(number, numbers.Real) and _is_scalar(number):
        number = number.item()
    if isinstance(number, numbers.Real):
        try:
            return float(number)
        except (TypeError, ValueError, OverflowError) as err:
            raise MetricValueError(f"metric {name!r}: {err}") from err
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise MetricValueError(
        f"metric {name!r} must be a real number (int, float or a numpy/torch scalar), "
        f"got {type(value).__name__}: {shown}"
    )


def _is_scalar(value: Any) -> bool:
    return callable(getattr(value, "item", None)) and tuple(getattr(value, "shape", (0,))) == ()


def step_index(value: Any) -> int | None:
    """The ``step`` of a metric value: an integer (numpy integers too) or ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MetricValueError(f"a metric step must be an integer, got {value!r}")
    try:
        return int(value.__index__())
    except (AttributeError, TypeError) as err:
        raise MetricValueError(
            f"a metric step must be an integer, got {type(value).__name__}: {value!r}"
        ) from err


def to_json(value: Any) -> str:
    """JSON text for ``value``: ``kfnb.jsonio.dumps`` (standard JSON, no NaN)."""
    return dumps(value)


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)
