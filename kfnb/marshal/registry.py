"""The serializer registry: which format writes which value, in which order.

Modelled on papermill's engine registry. A ``Registry`` holds serializers in lookup order; the
store asks them in that order whether they ``accept`` a value, and the first that accepts (and does
not ``Decline``) writes it. Loading dispatches on the file suffix instead, so suffixes are unique.

Order rules:

- ``register(s)`` (``first=True``) puts ``s`` at the front: a later registration wins over earlier
  ones for the values it accepts.
- ``register(s, first=False)`` puts ``s`` just before the catch-all fallbacks, so it only sees
  values that no earlier serializer took.
- Registering a name that is already registered replaces that entry.

The default order is ``torch, arrow, npy, pickle, cloudpickle``: the typed formats first, then
pickle as the last resort for everything else, with cloudpickle behind it for the values pickle
declines because they reference code defined in the notebook (``__main__``).

Third-party serializers are found through the ``kfnb.serializers`` entry point group; each entry
point names a ``Serializer`` subclass or instance. The module-level default registry loads them the
first time it is used (a broken entry point then only warns); ``register_entry_points()`` loads
them on demand and raises.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from importlib import metadata

from ..errors import KfnbError
from .serializer import Serializer

ENTRY_POINT_GROUP = "kfnb.serializers"


class UnknownSerializerError(KfnbError, LookupError):
    """No serializer is registered under the requested name."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(
            f"no serializer named {name!r}; known serializers: {', '.join(self.known) or 'none'}"
        )


class Registry:
    """Serializers in lookup order, addressable by name and by file suffix."""

    def __init__(
        self, serializers: Iterable[Serializer] = (), *, autoload_entry_points: bool = False
    ) -> None:
        self._serializers: list[Serializer] = []
        self._autoload = autoload_entry_points
        for serializer in serializers:
            self._register(serializer, first=False)

    def copy(self) -> Registry:
        clone = Registry()
        clone._serializers = list(self._serializers)
        clone._autoload = self._autoload
        return clone

    def register(self, serializer: Serializer, *, first: bool = True) -> None:
        self._ensure_entry_points()
        self._register(serializer, first=first)

    def unregister(self, name: str) -> None:
        self._ensure_entry_points()
        self._serializers.remove(self.get(name))

    def get(self, name: str) -> Serializer:
        self._ensure_entry_points()
        for serializer in self._serializers:
            if serializer.name == name:
                return serializer
        raise UnknownSerializerError(name, (s.name for s in self._serializers))

    def serializers(self) -> list[Serializer]:
        self._ensure_entry_points()
        return list(self._serializers)

    def for_suffix(self, suffix: str) -> Serializer | None:
        self._ensure_entry_points()
        return next((s for s in self._serializers if s.suffix == suffix), None)

    def load_entry_points_ahead(self) -> bool:
        """Read the installed packages' entry points now rather than on first use (the kernels'
        fork server does it once for every kernel it forks: the reading is ~18 ms a process).
        Where the group is empty, the usual case, nothing is left for the first use; where
        plugins are installed, they load on first use as before (their code runs in the kernel
        that uses them, never in the fork server, where a thread started by an import would
        meet the fork; a broken one warns in that kernel's step). Returns whether it is done."""
        if not self._autoload:
            return True
        if metadata.entry_points(group=ENTRY_POINT_GROUP):
            return False
        self._autoload = False
        return True

    def register_entry_points(self) -> list[str]:
        """Register every serializer of the ``kfnb.serializers`` group; return their names."""
        self._autoload = False
        return self._load_entry_points(strict=True)

    # -- internals -------------------------------------------------------------------------

    def _register(self, serializer: Serializer, *, first: bool) -> None:
        _validate(serializer)
        rest = [s for s in self._serializers if s.name != serializer.name]
        for other in rest:
            if other.suffix == serializer.suffix:
                raise KfnbError(
                    f"cannot register serializer {serializer.name!r}: suffix {serializer.suffix!r}"
                    f" is already used by serializer {other.name!r}",
                    fix=f"choose another suffix or unregister({other.name!r}) first",
                )
        if first:
            position = 0
        elif serializer.fallback:
            position = len(rest)
        else:
            position = next((i for i, s in enumerate(rest) if s.fallback), len(rest))
        rest.insert(position, serializer)
        self._serializers = rest

    def _ensure_entry_points(self) -> None:
        if self._autoload:
            self._autoload = False
            self._load_entry_points(strict=False)

    def _load_entry_points(self, *, strict: bool) -> list[str]:
        names = []
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                serializer = _instantiate(entry_point)
                self._register(serializer, first=True)
            except Exception as err:
                if strict:
                    raise
                warnings.warn(f"kfnb: skipping serializer entry point: {err}", stacklevel=3)
                continue
            names.append(serializer.name)
        return names


def _instantiate(entry_point: metadata.EntryPoint) -> Serializer:
    where = f"entry point {entry_point.name!r} ({entry_point.value}) in group {ENTRY_POINT_GROUP!r}"
    try:
        obj = entry_point.load()
    except Exception as err:
        raise KfnbError(f"cannot load {where}: {err}") from err
    if isinstance(obj, type) and issubclass(obj, Serializer):
        obj = obj()
    if not isinstance(obj, Serializer):
        raise KfnbError(
            f"{where} names {obj!r}, which is neither a kfnb.marshal.Serializer subclass nor an "
            "instance of one"
        )
    return obj


def _validate(serializer: object) -> None:
    if not isinstance(serializer, Serializer):
        raise TypeError(f"expected a kfnb.marshal.Serializer instance, got {serializer!r}")
    name = getattr(serializer, "name", None)
    suffix = getattr(serializer, "suffix", None)
    if not isinstance(name, str) or not name:
        raise KfnbError(f"serializer {type(serializer).__qualname__} has no 'name'")
    if not isinstance(suffix, str) or not suffix.startswith(".") or "/" in suffix:
        raise KfnbError(
            f"serializer {name!r} has suffix {suffix!r}; a suffix must start with '.', e.g. '.npy'"
        )


def _builtin_registry() -> Registry:
    from .arrow import ArrowSerializer
    from .numpy_ import NumpySerializer
    from .pickle_ import CloudpickleSerializer, PickleSerializer
    from .torch_ import TorchSerializer

    return Registry(
        [
            TorchSerializer(),
            ArrowSerializer(),
            NumpySerializer(),
            PickleSerializer(),
            CloudpickleSerializer(),
        ],
        autoload_entry_points=True,
    )


default_registry: Registry = _builtin_registry()
"""The registry the module-level functions and ``kfnb.marshal.save``/``load`` use."""


def register(serializer: Serializer, *, first: bool = True) -> None:
    """Add ``serializer`` to the default registry (see the module docstring for the order)."""
    default_registry.register(serializer, first=first)


def unregister(name: str) -> None:
    """Remove the serializer called ``name``; ``UnknownSerializerError`` if there is none."""
    default_registry.unregister(name)


def get(name: str) -> Serializer:
    """The serializer called ``name``; ``UnknownSerializerError`` lists the known ones."""
    return default_registry.get(name)


def serializers() -> list[Serializer]:
    """The registered serializers in lookup order."""
    return default_registry.serializers()


def register_entry_points() -> list[str]:
    """Register the serializers named by the ``kfnb.serializers`` entry point group."""
    return default_registry.register_entry_points()
