"""What passes between kfnb and a Katib trial: Katib's strings and the pod's variables.

Katib hands out every parameter value as a string (``typed`` reads it back as the study's
space says: a float, an int, the choice's own value) and reads metrics from ``name=value``
lines (``number_text`` writes a number so every Katib version's default filter reads it
whole; ``METRIC_NAME`` is what its filter takes as a name; ``finite`` reads a value it
reported). A trial's pod gets its values in ``KFNB_PARAM_<name>``, the space and the fixed
parameters in ``KFNB_TRIAL`` (JSON), a notebook in ``KFNB_TRIAL_NOTEBOOK`` (packed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .space import Distribution, Float, Int, SpaceError, _text

TRIAL_ENV = "KFNB_TRIAL"
NOTEBOOK_ENV = "KFNB_TRIAL_NOTEBOOK"
PARAM_ENV = "KFNB_PARAM_"
#: what Katib's StdOut collector can read as a metric name (its default filter's name group,
#: ASCII as Go's ``\w``)
METRIC_NAME = re.compile(r"^[\w-]+$", re.ASCII)


def typed(space: Mapping[str, Distribution], name: str, text: str) -> Any:
    """The value Katib assigned to ``name`` (a string) as the space's type: a float, an int,
    or the choice's own value. A name the space lacks stays text."""
    dist = space.get(name)
    if dist is None:
        return text
    try:
        if isinstance(dist, Int):
            number = float(text)
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        if isinstance(dist, Float):
            return float(text)
    except ValueError:
        raise SpaceError(f"Katib gave {name!r} the value {text!r}, not a number") from None
    for value in dist.values:
        if _text(value) == text:
            return value
    for value in dist.values:  # "0.10" for 0.1: the same number
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                if float(text) == value:
                    return value
            except ValueError:
                break
    raise SpaceError(
        f"Katib gave {name!r} the value {text!r}, which is not one of its choices "
        f"({', '.join(_text(v) for v in dist.values)})"
    )


def number_text(value: float) -> str:
    """``value`` as Katib's StdOut filter reads it whole: positional digits, no exponent
    (Katib before 0.17 read ``1e-05`` as 1)."""
    from decimal import Decimal

    return format(Decimal(repr(float(value))), "f")


def finite(text: Any) -> float | None:
    """A metric value Katib reported (a string; ``unavailable`` when it found none)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
