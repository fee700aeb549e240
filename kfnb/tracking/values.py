"""Turning user values into what the store keeps: metric values as floats, the rest as JSON.

Names (of steps, parameters, artifacts, event kinds) are non-empty strings, unique where they
name things of one run (``check_names``); a status is one the state machine knows
(``check_status``).

A metric is a real number: ``bool``, ``int``, ``float``, any ``numbers.Real`` and scalars of
numpy or torch (anything with ``.item()`` and an empty ``shape``). NaN and infinities are allowed.
Parameters, step errors, specs and event data are stored as JSON written by ``kfnb.jsonio``
(standard JSON: a non-finite float is ``null``; a value JSON cannot hold is stored as its nearest
JSON form, else its ``repr``).
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable
from typing import Any

from ..jsonio import dumps
from .errors import MetricValueError, TrackingError


def check_names(values: Iterable[str], what: str) -> list[str]:
    """``values`` as a list, or ``TrackingError`` for an empty, non-string or repeated name."""
    names = list(values)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TrackingError(f"a {what} name must be a non-empty string, got {name!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise TrackingError(f"{what} names must be unique; repeated: {', '.join(dup)}")
    return names


def check_status(status: str, known: tuple[str, ...], what: str) -> None:
    """``TrackingError`` unless ``status`` is one of ``known``."""
    if status not in known:
        raise TrackingError(f"unknown {what} status {status!r}; one of {', '.join(known)}")


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
