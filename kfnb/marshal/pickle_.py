"""The catch-all serializers: pickle (``.pkl``), and cloudpickle (``.cloudpkl``) behind it.

Plain pickle (protocol 5) writes functions and classes *by reference*: ``__main__.clean`` or
``__main__.Model``. That pickles fine inside the notebook kernel, but the next step runs in a fresh
kernel that never executed the defining cell, so loading fails there. Such values (notebook-defined
functions, lambdas, classes, instances of notebook-defined classes, and containers holding them)
must be written *by value*, which is what cloudpickle does.

Detection costs no second pass: ``PickleSerializer`` pickles with a ``Pickler`` whose
``reducer_override`` raises as soon as it meets a function or class defined in ``__main__`` or
local to a function (qualname with ``<lambda>`` or ``<locals>``); the serializer then ``Decline``s
and the store hands the value to ``CloudpickleSerializer``. CPython calls ``reducer_override``
only for objects that are not atoms (int, float, str, bytes, None, bool) nor builtin containers
(dict, list, tuple, set), so the check adds one Python call per other object: nothing measurable for
a dict of large numpy arrays (their buffers are written by numpy's own reducer) or for plain
dicts and lists, about 0.1-0.2 us per object for lists of many small non-builtin objects (+20-30%
on 200k ``datetime.date`` or ``Fraction``; see ``benchmarks/marshal_bench.py``).

Both files load with ``pickle.load``; a cloudpickle file needs cloudpickle importable there.
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any

from .serializer import Decline, Serializer

PROTOCOL = 5


class _DefinedInNotebook(Exception):
    def __init__(self, obj: object) -> None:
        super().__init__(getattr(obj, "__qualname__", repr(obj)))


class _ByReferenceChecker(pickle.Pickler):
    """A pickler that refuses code a fresh kernel could not import by name."""

    def reducer_override(self, obj: object) -> Any:
        if isinstance(obj, (types.FunctionType, type)) and _needs_by_value(obj):
            raise _DefinedInNotebook(obj)
        return NotImplemented


def _needs_by_value(obj: types.FunctionType | type) -> bool:
    qualname = getattr(obj, "__qualname__", "")
    return (
        getattr(obj, "__module__", None) == "__main__"
        or "<lambda>" in qualname
        or "<locals>" in qualname
    )


class PickleSerializer(Serializer):
    name = "pickle"
    suffix = ".pkl"
    fallback = True

    def accepts(self, value: object) -> bool:
        return not isinstance(value, types.ModuleType)

    def dump(self, value: object, path: Path) -> None:
        with open(path, "wb") as file:
            try:
                _ByReferenceChecker(file, protocol=PROTOCOL).dump(value)
            except _DefinedInNotebook as signal:
                raise Decline(f"it references {signal} defined in the notebook") from None

    def load(self, path: Path) -> object:
        with open(path, "rb") as file:
            return pickle.load(file)


class CloudpickleSerializer(Serializer):
    name = "cloudpickle"
    suffix = ".cloudpkl"
    fallback = True

    def accepts(self, value: object) -> bool:
        return not isinstance(value, types.ModuleType)

    def dump(self, value: object, path: Path) -> None:
        import cloudpickle

        with open(path, "wb") as file:
            cloudpickle.dump(value, file, protocol=PROTOCOL)

    def load(self, path: Path) -> object:
        with open(path, "rb") as file:
            return pickle.load(file)
