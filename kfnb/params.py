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
import re
import reprlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .dag import Pipeline
from .errors import KfnbError

TRUE = {"true", "yes", "on", "1"}
#: The largest value a parameter may have, as (about) the bytes of its JSON. 64 KiB because a
#: value is copied into every step notebook (a cell that sets it), stored in the run record,
#: printed by ``kfnb show`` and sent to Kubeflow inside the run's spec (KFP/Argo keep a whole
#: workflow object under about 1.5 MiB in etcd). That is room for a long list of ids or a small
#: config; data belongs in a file whose path is the parameter (``kfnb.files`` ships it).
MAX_VALUE_BYTES = 64 * 1024
#: The deepest nesting of lists and dicts a value may have (and a parameter expression:
#: brackets, or operators in a parameters cell): real configs nest a few levels; hundreds of
#: levels only exhaust Python's recursion when the value is read, copied or written.
MAX_DEPTH = 32
#: The longest text a command-line value (``-p NAME TEXT``) may be: the value limit.
MAX_TEXT = MAX_VALUE_BYTES
#: The largest params file (``-f FILE``) read: its values are bounded, so is the file.
MAX_FILE_BYTES = 4 * 1024 * 1024
_FILE_FIX = "pass a file path as the parameter instead and read the data in a step (list the "
_FILE_FIX += "file in the notebook's kfnb.files metadata so compiled pipelines ship it)"
FALSE = {"false", "no", "off", "0"}


class ParameterError(KfnbError):
    """A parameter value that the pipeline cannot take."""


class TooBigError(ParameterError):
    """A parameter value over the size or nesting limit (``MAX_VALUE_BYTES``, ``MAX_DEPTH``)."""


class NotFiniteError(ParameterError):
    """A number parameter given NaN or an infinity (or a number that overflows to one)."""


def resolve_params(
    pipeline: Pipeline,
    values: Mapping[str, Any] | None = None,
    strings: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """All parameter values of a run: defaults, then ``values``, then CLI ``strings``."""
    result = {name: p.default for name, p in pipeline.parameters.items()}
    source = values if isinstance(values, ParamsFile) else None
    for name, value in (values or {}).items():
        if source is not None:
            result[name] = source.check(pipeline, name, value)
        else:
            result[name] = check_value(pipeline, name, value)
    strings = list(strings)
    check_repeats(strings)
    for name, text in strings:
        result[name] = parse_string(pipeline, name, text)
    return result


def check_repeats(strings: Iterable[tuple[str, str]]) -> None:
    """A parameter given twice on one command line is an error, not "the last one wins"."""
    seen: dict[str, str] = {}
    for name, text in strings:
        if name in seen:
            raise ParameterError(
                f"parameter {short(name)} is given twice: {short(seen[name])} and {short(text)}",
                fix=f"pass it once: -p {name} VALUE" if len(name) <= 60 else "pass it once",
            )
        seen[name] = text


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to about ``limit`` characters with the full length said: long
    values (a 10 MB string) are named in errors and listings, not printed. Bounded work
    (``reprlib``) whatever the value's size or depth."""
    if isinstance(value, str):
        text = repr(value[: limit + 1])
        if len(value) <= limit and len(text) <= limit:
            return text
        return f"{text[:limit]}... (a str of {len(value)} chars)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"(an int of about {value.bit_length() * 30103 // 100000 + 1} digits)"
    text = _REPR.repr(value)
    if len(text) <= limit and "..." not in text:
        return text
    kind = type(value).__name__
    if isinstance(value, (list, tuple, dict, set)):
        return f"{text[:limit]}... ({_article(kind)} {kind} of {len(value)} items)"
    return f"{text[:limit]}..."


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 8, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 20


def value_problem(value: Any) -> str | None:
    """What makes ``value`` too big for a parameter (``None`` when it fits): nesting deeper than
    ``MAX_DEPTH`` or more than ``MAX_VALUE_BYTES``. Walked without recursion."""
    size = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth >= MAX_DEPTH:
                return f"nests lists/dicts more than {MAX_DEPTH} levels deep (the limit)"
            size += 2
            items = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((x, depth + 1) for x in items)
            size += len(items)
        elif isinstance(item, str):
            size += len(item) + 2 if item.isascii() else len(item.encode("utf-8", "replace")) + 2
        elif isinstance(item, int) and not isinstance(item, bool):
            size += item.bit_length() * 30103 // 100000 + 1
        else:
            size += 8
        if size > MAX_VALUE_BYTES:
            return f"is more than {MAX_VALUE_BYTES // 1024} KiB (the limit)"
    return None


def finite(value: Any) -> bool:
    """Whether ``value`` holds no NaN or infinity (in lists and dicts too, walked without
    recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return True


def check_size(name: str, value: Any) -> None:
    """A ``ParameterError`` when ``value`` is too big or too deep for parameter ``name``."""
    problem = value_problem(value)
    if problem is not None:
        raise TooBigError(f"the value of parameter {short(name)} {problem}", fix=_FILE_FIX)


def nesting(text: str) -> int:
    """The deepest bracket nesting (``[{(``) of ``text``, quoted strings skipped: checked before
    a text is parsed, so a deeply nested one is refused before it exhausts the parser."""
    depth = deepest = 0
    quote: str | None = None
    escaped = False
    for char in text:
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]})":
            depth = max(0, depth - 1)
    return deepest


class ParamsFile(dict[str, Any]):
    """The values of a params file (``-f FILE``), with where each came from: an error about one
    of them names the file and the line, never the file's content (the file may not be the one
    meant: ``-f /etc/shadow``)."""

    def __init__(self, path: Path, values: Mapping[str, Any], lines: Mapping[str, int]) -> None:
        super().__init__(values)
        self.path = path
        self.lines = dict(lines)

    def where(self, name: str) -> str:
        line = self.lines.get(name)
        return f"{self.path}, line {line}" if line else str(self.path)

    def check(self, pipeline: Pipeline, name: str, value: Any) -> Any:
        """``check_value`` of the entry ``name``, its errors located and without the value."""
        if name not in pipeline.parameters:
            shown = f"{name!r}" if _NAME.match(name) else "a key"
            raise ParameterError(
                f"{shown} is not a parameter of pipeline {pipeline.name!r}",
                where=self.where(name),
                fix=f"known parameters: {', '.join(pipeline.parameters) or 'none'}"
                + ("; is this the params file you meant?" if shown == "a key" else ""),
            )
        try:
            return check_value(pipeline, name, value, echo=False)
        except ParameterError as err:
            raise type(err)(err.message, fix=err.fix, where=self.where(name)) from None


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


def read_text_file(path: str | Path, what: str, fix: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The text of an input file (``what``: "parameters file", "grid file"...): a
    ``ParameterError`` that names the file and the line, never its content, for a file that is
    missing, a folder, unreadable, larger than ``max_bytes``, not UTF-8 or holding NUL."""
    p = Path(path)
    name = short(str(p), 200)
    try:
        with p.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError as err:
        raise ParameterError(f"no {what} at {name}", fix="check the path") from err
    except IsADirectoryError as err:
        raise ParameterError(f"{name} is a folder, not a {what}", fix="name a file") from err
    except (OSError, ValueError) as err:  # too long a name, no permission, a NUL in the name
        reason = getattr(err, "strerror", None) or "not a usable path"
        raise ParameterError(
            f"cannot read the {what} {name}: {reason}", fix="check the path and its permissions"
        ) from err
    if len(raw) > max_bytes:
        raise ParameterError(
            f"the {what} {name} is larger than {max_bytes // 2**20} MiB",
            fix="is this the file you meant? " + fix,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ParameterError(
            f"the {what} {name} is not UTF-8 text (line {line})",
            fix="save it as UTF-8; is this the file you meant?",
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ParameterError(
            f"the {what} {name} holds a NUL character (line {line}), so it is no text file",
            fix="is this the file you meant? " + fix,
        )
    return text


def read_yaml_file(path: str | Path, what: str, fix: str) -> tuple[Any, Any]:
    """``(data, node)`` of a small YAML (or JSON) input file: ``read_text_file``'s checks, then
    brackets nested at most ``MAX_DEPTH`` deep and valid YAML; errors name the file and the
    line, never its content (YAML's own messages quote the file: they are not passed on)."""
    text = read_text_file(path, what, fix)
    name = short(str(path), 200)
    deep = nesting(text)
    if deep > MAX_DEPTH:
        raise TooBigError(
            f"the {what} {name} nests brackets {deep} levels deep, over the limit of {MAX_DEPTH}",
            fix=fix,
        )
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:  # its text quotes the file: keep the line and problem
        mark = err.problem_mark or err.context_mark
        at = f", line {mark.line + 1}" if mark is not None else ""
        # the problem may quote a token of the file ("found character '\t'..."): cut quotes
        problem = re.sub(r"'[^']*'|\"[^\"]*\"", "...", err.problem or err.context or "")
        raise ParameterError(
            f"the {what} {name}{at} is not valid YAML: {problem[:100] or 'unreadable'}", fix=fix
        ) from None
    except (yaml.YAMLError, ValueError, RecursionError, MemoryError):
        raise ParameterError(f"the {what} {name} is no YAML kfnb can read", fix=fix) from None
    finally:
        loader.dispose()
    return data, node


def load_params_file(path: str | Path) -> ParamsFile:
    """Read a YAML (or JSON) file of ``name: value`` pairs. Errors name the file and the line,
    never what the file holds."""
    p = Path(path)
    fix = "write one `name: value` line per parameter, e.g. `learning_rate: 0.01`"
    data, node = read_yaml_file(p, "parameters file", fix)
    if data is None:
        return ParamsFile(p, {}, {})
    if not isinstance(data, dict):
        raise ParameterError(
            f"the parameters file {short(str(p), 200)} must hold a mapping of parameter names "
            f"to values, not a {type(data).__name__}",
            fix="is this the file you meant? " + fix,
        )
    lines: dict[str, int] = {}
    for key_node, _ in getattr(node, "value", []):
        lines.setdefault(str(getattr(key_node, "value", "")), key_node.start_mark.line + 1)
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key)
        where = f"{p}, line {lines[name]}" if name in lines else str(p)
        if not _NAME.match(name):
            raise ParameterError(
                "a key that is not a parameter name (letters, digits and '_')",
                where=where,
                fix="is this the file you meant? " + fix,
            )
        issue = value_problem(value)
        if issue is not None:
            raise TooBigError(f"the value of {name!r} {issue}", where=where, fix=_FILE_FIX)
        values[name] = value
    return ParamsFile(p, values, lines)


def _param(pipeline: Pipeline, name: str) -> Any:
    if name not in pipeline.parameters:
        known = list(pipeline.parameters)
        close = difflib.get_close_matches(name[:200], known, n=1, cutoff=0.6)
        listed = ", ".join(known) or "none (the notebook has no parameters cell)"
        hint = f"did you mean {close[0]!r}?" if close else f"known parameters: {listed}"
        raise ParameterError(f"pipeline {pipeline.name!r} has no parameter {short(name)}", fix=hint)
    return pipeline.parameters[name]


def check_value(pipeline: Pipeline, name: str, value: Any, *, echo: bool = True) -> Any:
    """A typed value for ``name``, or a ``ParameterError`` (naming the value unless ``echo`` is
    false: a params file's content is not repeated)."""
    param = _param(pipeline, name)
    check_size(name, value)
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
        given = type(value).__name__
        raise ParameterError(
            f"parameter {name!r} is {_article(kind)} {kind} (default {short(param.default)}), "
            f"not {_article(given)} {given}" + (f" ({short(value)})" if echo else ""),
            fix=f"pass {_article(kind)} {kind}",
        )
    if kind == "float":
        value = _to_float(name, value, echo)
    _check_finite(name, value, echo)
    if kind == "list":
        return list(value)
    return value


def _to_float(name: str, value: Any, echo: bool = True) -> float:
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        raise _not_finite(name, value, echo) from None


def _check_finite(name: str, value: Any, echo: bool = True) -> None:
    """Refuse NaN and infinities, also inside lists and dicts (JSON has neither). Walked
    without recursion (``check_size`` bounded the depth, this holds either way)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise _not_finite(name, item, echo)
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())


def _not_finite(name: str, value: Any, echo: bool = True) -> NotFiniteError:
    if isinstance(value, int):
        shown = f"an integer of about {value.bit_length() * 30103 // 100000 + 1} digits"
    else:
        shown = repr(value) if echo else "NaN or an infinity"
    return NotFiniteError(
        f"parameter {name!r} must be a finite number, not {shown}",
        fix="give a finite number, e.g. 0.5",
    )


EXAMPLES = {"int": "7", "float": "0.5", "bool": "true", "list": "[1, 2]", "dict": '{"a": 1}'}


def parse_string(pipeline: Pipeline, name: str, text: str) -> Any:
    """Convert a command-line string to the type of parameter ``name``."""
    param = _param(pipeline, name)
    kind = param.type
    if len(text) > MAX_TEXT:
        raise TooBigError(
            f"the value of parameter {name!r} is {len(text)} characters, over the limit of "
            f"{MAX_TEXT // 1024} KiB",
            fix=_FILE_FIX,
        )
    if kind != "str":
        deep = nesting(text)
        if deep > MAX_DEPTH:
            raise TooBigError(
                f"the value of parameter {name!r} nests brackets {deep} levels deep, over the "
                f"limit of {MAX_DEPTH}",
                fix=f"flatten it, or {_FILE_FIX}",
            )
    try:
        value = _convert(pipeline, name, kind, text)
    except (NotFiniteError, TooBigError):
        raise
    except (RecursionError, MemoryError) as err:
        raise TooBigError(
            f"the value of parameter {name!r} is nested too deeply to read",
            fix=f"flatten it, or {_FILE_FIX}",
        ) from err
    except (ValueError, yaml.YAMLError, ParameterError) as err:
        raise _not_kind(param, name, kind, text) from err
    check_size(name, value)
    _check_finite(name, value)
    return value


def _not_kind(param: Any, name: str, kind: str, text: str) -> ParameterError:
    example = EXAMPLES.get(kind, short(json.dumps(param.default, default=str)))
    return ParameterError(
        f"parameter {name!r} is {_article(kind)} {kind} (default {short(param.default)}); "
        f"{short(text)} is not {_article(kind)} {kind}",
        fix=f"pass e.g. -p {name} {example}",
    )


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
