"""IPython syntax in step code: what a cell that is not plain Python means for name analysis.

A cell may hold magics, ``!`` shell escapes and ``obj?`` help. :func:`parse` reads such a cell as
IPython runs it: plain Python first, then only the lines that look like IPython syntax, then the
whole cell through IPython's own transformer (:func:`transform`), which turns each magic into a
``get_ipython().run_line_magic(...)``/``run_cell_magic(...)``/``system(...)`` call with literal
arguments. The helpers here take such a call apart: :func:`ipython_call` recognises it,
:func:`magic_expansions` lists the ``$name``/``{expr}`` names IPython expands into it,
:func:`strip_options` finds the code after a ``%time``/``%timeit``/``%prun`` line's options and
:func:`magic_targets` the names that ``%%capture var`` or ``%%bash --out var`` bind. A
``%%magic`` cell is split without the transformer (:func:`split_cell_magic`), which is slow on
long bodies. What each magic means for the namespace is decided by :mod:`.analyzer`.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import re
from typing import Any

from ..errors import SourceError

#: Cell magics whose body runs as code in the kernel's namespace.
NAMESPACE_CELL_MAGICS = frozenset({"time", "prun", "capture", "step", "kfnb"})
_SCRIPT_MAGICS = frozenset(
    {"bash", "sh", "script", "perl", "ruby", "python", "python2", "python3", "pypy"}
)
_NO_VAR_EXPAND = frozenset({"time", "timeit", "prun"})
_AST_RETRIES = 3


def parse_python(source: str, mode: str = "exec") -> Any:
    """``ast.parse``, tried again where CPython raises its spurious ``SystemError: AST
    constructor recursion depth mismatch`` (seen here on 3.11.7): its AST constructor keeps one
    depth counter for every thread, so another thread building an AST meanwhile (a traceback's
    carets, another run's parser) upsets it (python/cpython#106905). The source is not at
    fault, and the next try parses it."""
    for attempt in range(_AST_RETRIES):
        try:
            return ast.parse(source, mode=mode)
        except SystemError as err:
            if "recursion depth mismatch" not in str(err) or attempt == _AST_RETRIES - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


#: Line magics whose argument is code, with their options that take a value.
VALUED_OPTIONS = {"time": "", "timeit": "nrpv", "prun": "DlsT"}
_ESCAPED = re.compile(r"^\s*([%!?/,;]|[\w.,\s*()\[\]]*=\s*[%!])|\?\s*$")
_DOLLAR = re.compile(r"(?<!\$)\$([A-Za-z_]\w*)")
_BRACES = re.compile(r"(?<!\{)\{([^{}]+)\}(?!\})")


def transform(source: str) -> str:
    """Turn IPython syntax (magics, ``!`` escapes, ``obj?``) into Python, keeping line numbers."""
    return "\n" * _blank_lines(source) + _transformer().transform_cell(source)


def _blank_lines(source: str) -> int:
    """How many leading blank lines IPython drops before transforming a cell."""
    text = source.lstrip("\n \t\r")
    return source[: len(source) - len(text)].count("\n") if text else 0


def _transform_lines(source: str) -> str | None:
    """Transform only the lines that look like IPython syntax, one by one, or None if none do.

    IPython tokenizes the whole cell several times, which is slow for long cells; a line taken
    out of its context may be transformed wrongly, but then the result fails to parse (and the
    caller falls back to :func:`transform`) or differs only inside a string literal.
    """
    lines = source.splitlines()
    changed = False
    for i, line in enumerate(lines):
        if _ESCAPED.search(line):
            try:
                new = _transformer().transform_cell(line).rstrip("\n")
            except Exception:
                return None
            if "\n" in new:
                return None
            lines[i], changed = line[: len(line) - len(line.lstrip())] + new, True
    return "\n".join(lines) if changed else None


@functools.lru_cache(maxsize=1)
def _transformer() -> Any:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def parse(source: str, cell: int, offset: int) -> ast.Module:
    """Parse ``source``, transforming IPython syntax if it is not plain Python.

    Raises :class:`~kfnb.errors.SourceError` naming ``cell`` and the line (``offset`` + line in
    ``source``) of a syntax error.
    """
    with contextlib.suppress(SyntaxError, ValueError):
        return parse_python(source)  # plain Python: the common case, and fast
    quick = _transform_lines(source)
    if quick is not None:
        with contextlib.suppress(SyntaxError, ValueError):
            return parse_python(quick)
    try:
        return parse_python(transform(source))
    except SyntaxError as err:  # from the parser, or from IPython's tokenizer
        lineno = err.lineno
        if lineno and "<tokenize>" in str(err):
            lineno += _blank_lines(source)
        raise SourceError(err.msg, cell=cell, lineno=lineno + offset if lineno else None) from err
    except Exception as err:  # ValueError (null bytes), or the transformer failed
        raise SourceError(f"cannot read the code: {err}", cell=cell, lineno=None) from err


def split_cell_magic(source: str) -> tuple[str, str, str, int] | None:
    """(name, line, body, header line) of a ``%%magic`` cell, as IPython's ``cell_magic`` splits
    it (done here because the transformer tokenizes the whole body first, which is slow)."""
    lines = source.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line and not line.isspace()), None)
    if first is None or not lines[first].startswith("%%") or re.match(r"%%\w+\?", lines[first]):
        return None
    name, _, line = lines[first][2:].rstrip().partition(" ")
    return name, line, "".join(lines[first + 1 :]), first + 1


def ipython_call(node: ast.Call) -> tuple[str, list[str]] | None:
    """``get_ipython().method('literal', ...)`` as (method, args), as IPython's transforms emit."""
    func = node.func
    if not (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "get_ipython"
    ):
        return None
    args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return (func.attr, args) if len(args) == len(node.args) else None


def _expansion_names(text: str) -> set[str]:
    """Names IPython substitutes into a shell or magic line: ``$name`` and ``{expr}``."""
    names = set(_DOLLAR.findall(text))
    for expr in _BRACES.findall(text):
        try:
            tree = parse_python(expr.strip(), mode="eval")
        except (SyntaxError, ValueError):
            continue
        names.update(
            n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
        )
    return names


def magic_expansions(method: str, args: list[str]) -> set[str]:
    if method in ("system", "getoutput") and args:
        return _expansion_names(args[0])
    if method in ("run_line_magic", "run_cell_magic") and len(args) >= 2:
        return set() if args[0] in _NO_VAR_EXPAND else _expansion_names(args[1])
    return set()


def strip_options(line: str, valued: str) -> str:
    """Drop leading ``-x``/``-n 10``/``--long`` options from a magic line, leaving the code."""
    rest = line.lstrip()
    while rest.startswith("-") and (match := re.match(r"(\S+)\s*", rest)):
        token, rest = match.group(1), rest[match.end() :]
        if token == "--":
            break
        flags = "" if token.startswith("--") else token[1:]
        for i, flag in enumerate(flags):
            if flag in valued:
                if i == len(flags) - 1:
                    rest = re.sub(r"^\S+\s*", "", rest, count=1)
                break
    return rest


def magic_targets(name: str, line: str) -> list[str]:
    """Names a cell magic binds from its line: ``%%capture var``, ``%%bash --out var``."""
    words = line.split()
    if name == "capture":
        plain = [w for w in words if not w.startswith("-")]
        return plain[-1:] if plain and plain[-1].isidentifier() else []
    if name not in _SCRIPT_MAGICS:
        return []
    found = []
    for i, word in enumerate(words):
        option, _, value = word.partition("=")
        if option in ("--out", "--err", "--proc"):
            value = value or (words[i + 1] if i + 1 < len(words) else "")
            if value.isidentifier():
                found.append(value)
    return found
