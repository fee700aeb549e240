"""Saving and loading named values in a step's data directory.

One variable is one file, ``<directory>/<name><suffix>``, where the suffix says which serializer
wrote it; loading finds ``<name>.*`` and dispatches on the suffix, so the consumer needs no
side-channel to know the format. Names are variable names: non-empty, without dots or path
separators, so ``<name>.*`` matches that variable's file only.

Saving asks the registry's serializers in lookup order (see ``registry``); the first that accepts
the value and does not ``Decline`` writes it to a temporary file in the same directory, which is
then renamed over the target with ``os.replace``: readers never see a partial file, and a file
that another process still has memory-mapped keeps its old contents (the rename makes a new
inode). Files of the same name with another suffix (an earlier value of another type) are removed
afterwards. No ``fsync``: the files pass between processes on one machine or through a volume
that is flushed when the producer exits, not across crashes.

Every failure is a ``MarshalError`` that names the variable, its type, the step and the
directory, suggests a fix and chains the original error; a failed save leaves no file behind.
Module objects are refused: the step that needs a module re-imports it.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import types
from collections.abc import Iterable, Iterator, Mapping, MappingView
from pathlib import Path

from ..errors import KfnbError, MarshalError
from . import registry
from .serializer import Decline, Serializer


def save(value: object, directory: str | Path, name: str, *, step: str | None = None) -> Path:
    """Write ``value`` as ``directory/<name><suffix>`` and return that path."""
    return _save(value, Path(directory), name, step)[0]


def load(directory: str | Path, name: str, *, step: str | None = None) -> object:
    """Read the value saved as ``directory/<name>.*``."""
    directory = Path(directory)
    _check_name(name)
    path, serializer = _find(directory, name, step)
    try:
        return serializer.load(path)
    except KfnbError as err:  # e.g. MissingDependencyError: its fix says what to do
        cause = f"{err.where}: {err.message}" if err.where else err.message
        raise MarshalError(
            f"cannot load variable {name!r}{_for(step)} from {path}: {cause}", fix=err.fix
        ) from err
    except Exception as err:
        fix = (
            f"install the package that provides module {err.name!r} in the environment of "
            f"{_step(step) or 'this step'}"
            if isinstance(err, ModuleNotFoundError) and err.name
            else "re-run the step that produced it"
        )
        raise MarshalError(
            f"cannot load variable {name!r}{_for(step)} from {path} with the "
            f"{serializer.name!r} serializer: {err}",
            fix=fix,
        ) from err


def save_all(
    values: Mapping[str, object], directory: str | Path, *, step: str | None = None
) -> dict[str, str]:
    """Save every item of ``values``; return variable name -> name of the serializer used."""
    directory = Path(directory)
    return {name: _save(value, directory, name, step)[1].name for name, value in values.items()}


def load_all(
    directory: str | Path, names: Iterable[str], *, step: str | None = None
) -> dict[str, object]:
    """Load each of ``names`` from ``directory``."""
    return {name: load(directory, name, step=step) for name in names}


def load_folder(directory: str | Path, *, step: str | None = None) -> dict[str, object]:
    """Load every value saved in ``directory`` (``{}`` when it does not exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    names = sorted(
        {p.name.split(".")[0] for p in directory.iterdir() if not p.name.startswith(".")}
    )
    return load_all(directory, names, step=step)


# -- saving ----------------------------------------------------------------------------------


def _save(value: object, directory: Path, name: str, step: str | None) -> tuple[Path, Serializer]:
    _check_name(name)
    if isinstance(value, types.ModuleType):
        raise MarshalError(
            f"variable {name!r}{_of(step)} is the module {value.__name__!r}; modules are not "
            "saved between steps",
            fix="nothing to do, steps that use it import it again "
            "(keep the import in an 'imports' cell or in the step itself)",
        )
    directory.mkdir(parents=True, exist_ok=True)
    for serializer in registry.default_registry.serializers():
        if not serializer.accepts(value):
            continue
        temp = _temp_path(directory, name, serializer.suffix)
        try:
            serializer.dump(value, temp)
        except Decline:
            temp.unlink(missing_ok=True)
            continue
        except BaseException as err:
            temp.unlink(missing_ok=True)
            if not isinstance(err, Exception):
                raise
            raise _cannot_save(value, name, step, serializer, err) from err
        target = directory / f"{name}{serializer.suffix}"
        os.replace(temp, target)
        for path, _ in _files_of(directory, name):
            if path != target:
                path.unlink(missing_ok=True)
        return target, serializer
    raise MarshalError(
        f"cannot save variable {name!r} ({_type_name(value)}){_of(step)}: no registered "
        "serializer accepts it",
        fix="register a fallback serializer such as 'pickle'",
    )


def _temp_path(directory: Path, name: str, suffix: str) -> Path:
    fd, path = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=f"{suffix}.tmp")
    os.close(fd)
    return Path(path)


def _cannot_save(
    value: object, name: str, step: str | None, serializer: Serializer, err: Exception
) -> MarshalError:
    return MarshalError(
        f"cannot save variable {name!r} ({_type_name(value)}){_of(step)} with the "
        f"{serializer.name!r} serializer: {err}",
        fix=_advice(value, name),
    )


def _advice(value: object, name: str) -> str:
    module = type(value).__module__.split(".")[0]
    if isinstance(value, (types.GeneratorType, MappingView)) or (
        isinstance(value, Iterator) and not isinstance(value, io.IOBase)
    ):
        return (
            f"convert it to a list first ({name} = list({name})), or recreate it in the "
            "downstream step"
        )
    if isinstance(value, io.IOBase):
        return (
            "pass the file's path (or its contents) instead and open the file again in the "
            "downstream step"
        )
    if module in {"socket", "ssl", "_thread", "threading", "multiprocessing", "sqlite3", "asyncio"}:
        return (
            "recreate it in the downstream step (open the connection, lock or thread there); "
            "it cannot leave the process that made it"
        )
    return (
        "recreate it in the downstream step, or save it to a file yourself and pass the path "
        "(or leave it out of the step's outputs)"
    )


# -- loading ---------------------------------------------------------------------------------


def _find(directory: Path, name: str, step: str | None) -> tuple[Path, Serializer]:
    files = list(_files_of(directory, name)) if directory.is_dir() else []
    known = [
        (path, serializer)
        for path, suffix in files
        if (serializer := registry.default_registry.for_suffix(suffix)) is not None
    ]
    if known:  # several only if a save was interrupted between rename and cleanup: newest wins
        return max(known, key=lambda item: item[0].stat().st_mtime_ns)
    if files:
        suffixes = ", ".join(sorted(suffix for _, suffix in files))
        registered = ", ".join(f"{s.name} ({s.suffix})" for s in registry.serializers())
        raise MarshalError(
            f"variable {name!r}{_for(step)} was saved in {directory} with suffix {suffixes}, "
            f"which no registered serializer reads (registered: {registered})",
            fix="install and register the serializer that the producing step used",
        )
    raise MarshalError(
        f"variable {name!r}{_for(step)} was not found in {directory} (no file {name}.*)",
        fix=f"check that an upstream step defines {name!r} and finished successfully",
    )


def _files_of(directory: Path, name: str) -> Iterator[tuple[Path, str]]:
    """``(path, suffix)`` of every file ``<name>.*`` in ``directory``."""
    prefix = f"{name}."
    with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.is_file():
                yield Path(entry.path), entry.name[len(name) :]


# -- messages --------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or any(c in name for c in "./\\\0"):
        raise MarshalError(
            f"invalid variable name {name!r}: a name must be non-empty and contain no '.', "
            "'/' or '\\'"
        )


def _type_name(value: object) -> str:
    cls = type(value)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _step(step: str | None) -> str:
    return f"step {step!r}" if step else ""


def _of(step: str | None) -> str:
    return f" of {_step(step)}" if step else ""


def _for(step: str | None) -> str:
    return f" needed by {_step(step)}" if step else ""
