"""The one JSON encoding of kfnb: the run store, the REST API and every ``--json`` output.

JSON has no NaN or infinities; Python's ``json`` writes them anyway (``NaN``), which browsers
and ``jq`` refuse. ``dumps`` writes non-finite floats as ``null`` (at any depth, inside lists,
dicts and tuples), and values JSON cannot hold in their nearest JSON form: numpy scalars and
arrays through ``.item()``/``.tolist()``, sets as sorted lists, paths as strings, dataclasses
with ``to_dict()`` through it, anything else as its ``repr``. ``allow_nan=False`` guards the
result: nothing non-standard can leave.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any


def _is_scalar(value: Any) -> bool:
    return callable(getattr(value, "item", None)) and tuple(getattr(value, "shape", (0,))) == ()


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: finite numbers, strings, lists, dicts, ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if _is_scalar(value):
        return jsonable(value.item())
    if callable(getattr(value, "to_dict", None)):
        return jsonable(value.to_dict())
    if callable(getattr(value, "tolist", None)):
        return jsonable(value.tolist())
    if isinstance(value, (set, frozenset)):
        return [jsonable(v) for v in sorted(value, key=repr)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """Standard JSON text for ``value`` (see the module docstring)."""
    return json.dumps(jsonable(value), indent=indent, ensure_ascii=False, allow_nan=False)


def loads(text: str | bytes) -> Any:
    return json.loads(text)
