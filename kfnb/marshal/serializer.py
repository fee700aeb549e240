"""The ``Serializer`` interface every marshal format implements.

A serializer owns one file format (its ``suffix``) for one family of values. The registry asks
each serializer in lookup order whether it ``accepts`` a value; the first that does writes it.
``accepts`` must be cheap and must not import heavy libraries: it looks the library up in
``sys.modules`` (a value can only be a ``numpy.ndarray`` if numpy was already imported), so a step
that never imported pandas never pays for importing it here.

A serializer that accepted a value but finds, while writing, that its format cannot carry the
value exactly raises ``Decline``; the store discards the partial file and asks the next
serializer in lookup order. Arrow declines a frame with a mixed-type object column; pickle
declines a value that references notebook-defined code, which cloudpickle then writes by value.

``dump`` must write exactly the ``path`` it is given (a temporary file the store renames into
place atomically); ``load`` reads a file this serializer wrote, possibly in another process.
"""

from __future__ import annotations

import abc
import importlib
from pathlib import Path
from types import ModuleType
from typing import ClassVar

from ..errors import MissingDependencyError


class Decline(Exception):
    """Raised by ``Serializer.dump`` to hand a value on to the next serializer in lookup order."""


class Serializer(abc.ABC):
    """One file format for one family of values."""

    name: ClassVar[str]
    """Registry key, e.g. ``"npy"``."""

    suffix: ClassVar[str]
    """File suffix including the dot, e.g. ``".npy"``; unique among registered serializers."""

    fallback: ClassVar[bool] = False
    """True for the catch-all serializers (pickle, cloudpickle) that stay at the end of the
    lookup order when another serializer is registered with ``first=False``."""

    @abc.abstractmethod
    def accepts(self, value: object) -> bool:
        """Whether this serializer should write ``value``; cheap, imports nothing heavy."""

    @abc.abstractmethod
    def dump(self, value: object, path: Path) -> None:
        """Write ``value`` to ``path``; raise ``Decline`` to pass it to the next serializer."""

    @abc.abstractmethod
    def load(self, path: Path) -> object:
        """Read back a value written by ``dump``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.suffix})>"


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import an optional dependency, or raise ``MissingDependencyError`` naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(module, extra, feature) from err
