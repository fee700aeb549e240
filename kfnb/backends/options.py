"""A backend's options: typed, documented, with a default and the environment variables that set
them, derived from its config dataclass. One rule for every surface.

A config field declares what surfaces need in its metadata::

    max_parallel: int | None = option(None, "most steps at once", env="KFNB_MAX_PARALLEL")

``options(config_class)`` lists them (the CLI's help, the REST ``backends`` route, the widget
launcher's form); ``build(...)`` makes the config from explicit values > environment > config
file > default. An unknown option is a ``BackendError`` naming the nearest known one, the same
from the CLI, Python, REST and the magic.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError, check_keys, nearest
from ..errors import KfnbError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class BackendError(KfnbError):
    """A backend cannot run the pipeline as asked (unknown backend or option, resources it
    lacks...)."""


def option(
    default: Any, help: str, *, env: str | tuple[str, ...] = (), hidden: bool = False
) -> Any:
    """A config field with its help text and the environment variables that set it."""
    names = (env,) if isinstance(env, str) else tuple(env)
    meta = {"help": help, "env": names, "hidden": hidden}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Option:
    """One option of a backend, as surfaces show it."""

    name: str
    type: str  # int | float | bool | str | list  (what a value must be)
    default: Any
    help: str
    env: tuple[str, ...] = ()
    nullable: bool = True
    hidden: bool = False  # not offered in forms (e.g. credentials, test knobs)

    def to_dict(self) -> dict[str, Any]:
        default = list(self.default) if isinstance(self.default, tuple) else self.default
        return {
            "name": self.name,
            "type": self.type,
            "default": default,
            "help": self.help,
            "env": list(self.env),
            "nullable": self.nullable,
        }

    def parse(self, raw: Any, where: str | None) -> Any:
        """``raw`` (a JSON value, a Python value or text from the environment) as this option's
        type; a ``BackendError`` naming the option and ``where`` the value came from."""
        if raw is None:
            if self.nullable:
                return None
            raise self._bad(raw, where)
        if self.type == "bool":
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
                return raw.strip().lower() in _TRUE
            raise self._bad(raw, where)
        if self.type == "int":
            if isinstance(raw, bool):
                raise self._bad(raw, where)
            if isinstance(raw, int):
                return raw
            if isinstance(raw, str) and len(raw.strip()) <= 30:
                try:
                    return int(raw.strip())
                except ValueError:
                    pass
            raise self._bad(raw, where)
        if self.type == "float":
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                value = float(raw)
            elif isinstance(raw, str):
                try:
                    value = float(raw.strip())
                except ValueError:
                    raise self._bad(raw, where) from None
            else:
                raise self._bad(raw, where)
            if value != value or value in (float("inf"), float("-inf")):
                raise self._bad(raw, where)
            return value
        if self.type == "list":
            if isinstance(raw, str):
                return tuple(p.strip() for p in raw.split(",") if p.strip())
            if isinstance(raw, (list, tuple)) and all(isinstance(x, str) for x in raw):
                return tuple(raw)
            raise self._bad(raw, where)
        if isinstance(raw, str):
            return raw
        raise self._bad(raw, where)

    def check(self, value: Any, where: str | None) -> Any:
        """``value`` (parsed) within this option's bounds: an image option is a well-formed
        image reference, a count or a duration is in ``BOUNDS``; else a ``BackendError``."""
        if value is None:
            return value
        for text in value if isinstance(value, tuple) else (value,):
            problem = _text_problem(text) if isinstance(text, str) else None
            if problem is not None:
                raise BackendError(
                    f"option {self.name!r} {problem}",
                    where=where,
                    fix=f"give {self.name} plain text (a path, a name)",
                )
        choices = CHOICES.get(self.name)
        if choices is not None and value not in choices:
            raise BackendError(
                f"option {self.name!r} must be one of {', '.join(choices)}, got {_shown(value)}",
                where=where,
                fix=f"give {self.name} one of: {', '.join(choices)}",
            )
        if self.name in IMAGE_OPTIONS and isinstance(value, str):
            from ..notebook.images import IMAGE_FIX, image_problem, short_ref

            problem = image_problem(value)
            if problem is not None:
                raise BackendError(
                    f"option {self.name!r} {short_ref(value)}: {problem}",
                    where=where,
                    fix=IMAGE_FIX,
                )
        bounds = BOUNDS.get(self.name)
        if bounds is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high, why = bounds
            if not low <= value <= high:
                shown = repr(value) if abs(value) < 1e30 else "a very large number"
                raise BackendError(
                    f"option {self.name!r} must be between {low:g} and {high:g} ({why}), "
                    f"got {shown}",
                    where=where,
                    fix=f"give {self.name} a value from {low:g} to {high:g}",
                )
        return value

    def _bad(self, raw: Any, where: str | None) -> BackendError:
        shown = repr(raw) if len(repr(raw)) <= 60 else repr(raw)[:57] + "..."
        kinds = {"list": "a list of strings (or text with commas)", "int": "an integer"}
        kind = kinds.get(self.type, f"a {self.type}")
        return BackendError(
            f"option {self.name!r} must be {kind}, got {shown}",
            where=where,
            fix=f"give {self.name} {kind}" + ("" if not self.nullable else " (or leave it unset)"),
        )


#: The longest text an option takes (a path, a module name, a host): more is no mistake to echo.
MAX_TEXT = 4096
#: Options that take one of a few words, by name (whatever the backend).
CHOICES: dict[str, tuple[str, ...]] = {"kernel_transport": ("ipc", "tcp")}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text_problem(text: str) -> str | None:
    """Why an option's text cannot be a path, a name or a host (``None`` when it can): a NUL,
    a control character, text UTF-8 cannot carry, or more than ``MAX_TEXT`` characters. Such
    values break where they are used (``Path.resolve``, a kernel's argv), after a run began."""
    if len(text) > MAX_TEXT:
        return f"is {len(text)} characters long (the limit is {MAX_TEXT})"
    if any(ord(c) < 32 and c not in "\t" for c in text) or "\x7f" in text:
        return "holds a control character (a NUL, a newline...)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds text UTF-8 cannot carry (a lone surrogate)"
    return None


#: Options that name a container image: checked like every image reference.
IMAGE_OPTIONS = frozenset({"image", "base_image"})
#: Sane ranges of numeric options, by name (whatever the backend): (lowest, highest, why).
BOUNDS: dict[str, tuple[float, float, str]] = {
    "max_parallel": (1, 4096, "steps at once"),
    "pool_size": (0, 256, "kernels kept warm"),
    "cpus": (0.001, 65536, "CPU cores"),
    "memory": (1, 2.0**50, "bytes"),
    "poll_interval": (0.001, 3600, "seconds"),
    "timeout": (0.001, 30 * 24 * 3600, "seconds"),
    "retries": (0, 100, "retries of a step"),
    "gpus_per_node": (0, 1024, "GPUs"),
    "max_failed": (0, 1_000_000, "trials"),
    "trials": (1, 1_000_000, "trials"),
    "parallel": (1, 4096, "trials at once"),
}


def _kind(hint: Any) -> tuple[str, bool]:
    """``(type name, nullable)`` of a field's type hint."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    nullable = False
    if origin in (typing.Union, types.UnionType):
        nullable = type(None) in args
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else str
        origin = typing.get_origin(hint)
    if origin in (list, tuple) or hint in (list, tuple):
        return "list", nullable
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if hint is kind:
            return name, nullable
    return "str", nullable


def options(config_class: type) -> list[Option]:
    """The options of a backend whose config is the dataclass ``config_class``."""
    hints = typing.get_type_hints(config_class)
    found = []
    for f in dataclasses.fields(config_class):
        if f.metadata.get("internal"):
            continue
        kind, nullable = _kind(hints[f.name])
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        found.append(
            Option(
                name=f.name,
                type=kind,
                default=default,
                help=str(f.metadata.get("help", "")),
                env=tuple(f.metadata.get("env", ())),
                nullable=nullable,
                hidden=bool(f.metadata.get("hidden", False)),
            )
        )
    return found


def unknown_option(backend: str, name: str, known: list[str]) -> BackendError:
    """The one error for an option a backend does not have, wherever it was given."""
    return BackendError(
        f"backend {backend!r} has no option {name!r}",
        fix=f"{nearest(name, known)}its options are: {', '.join(sorted(known))}",
    )


def build(
    backend: str,
    config_class: type,
    given: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    file: Mapping[str, Any] | None = None,
    file_path: Any = None,
) -> Any:
    """The config of ``backend``: each option from ``given`` (not ``None``), else the first of its
    environment variables that is set, else the config ``file`` section, else its default."""
    specs = {o.name: o for o in options(config_class)}
    for name in given:
        if name not in specs:
            raise unknown_option(backend, name, list(specs))
    file = dict(file or {})
    try:
        check_keys(backend, file, specs, file_path)
    except ConfigError:
        raise
    env = env or {}
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if given.get(name) is not None:
            values[name] = spec.check(spec.parse(given[name], None), None)
            continue
        # an empty variable is unset, except for a list ("" is the empty list: KFNB_GPUS=)
        var = next(
            (v for v in spec.env if env.get(v, "") != "" or (v in env and spec.type == "list")),
            None,
        )
        if var is not None:
            where = f"environment variable {var}"
            values[name] = spec.check(spec.parse(env[var], where), where)
        elif file.get(name) is not None:
            where = f"section {backend} of {file_path}"
            values[name] = spec.check(spec.parse(file[name], where), where)
    return config_class(**values)
