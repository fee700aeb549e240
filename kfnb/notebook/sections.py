"""The special sections of a notebook: the parameters cells and the metrics cells.

A parameters cell (``pipeline-parameters``, or papermill's ``parameters``) holds simple literal
assignments, ``name = literal`` or ``name: type = literal``: each becomes a ``Param`` whose type
is the literal's (or the annotation's). Kale's ``pipeline-parameters`` cell holds nothing else.
Papermill's ``parameters`` cell may also hold other statements (``import os``, ``out =
os.path.join(base, "x")``), as papermill's own conventions allow: its parameters are the
assignments of literal values (what ``papermill --help-notebook`` lists, less the values that
are not literals), and the other statements are kept, in order, as a cell that runs after the
parameters' values are set (``Parameters.statements``; the parser makes it part of the
prelude). A metrics cell (``pipeline-metrics``) holds only ``print(name)`` lines: each printed
variable becomes a pipeline metric.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from ..dag import Cell, Param
from ..errors import NotebookError
from ..params import finite, value_problem

LITERAL_TYPES: dict[type, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    list: "list",
    dict: "dict",
    type(None): "any",
}
ANNOTATIONS = {"bool", "int", "float", "str", "list", "dict"}
#: The deepest syntax tree a statement of a parameters cell may have. Nothing in the cell is
#: evaluated (``ast.literal_eval`` reads literals), but reading, analysing and writing a tree
#: recurses once per level: a sum of thousands of terms would exhaust Python's recursion.
#: A literal default nests a few levels; a papermill statement (``os.path.join(...)``) a dozen.
EXPRESSION_DEPTH = 100


def _error(
    cell: Cell, lineno: int | None, message: str, fix: str, path: str | None
) -> NotebookError:
    line = cell.source.splitlines()[lineno - 1] if lineno else cell.first_line
    return NotebookError(
        f"line {lineno}: {message}" if lineno else message,
        cell_index=cell.index,
        cell_line=line,
        fix=fix,
        path=path,
    )


def _parse(cell: Cell, what: str, path: str | None) -> ast.Module:
    from .ipython import parse_python
    from .names import transform  # IPython syntax (magics) is allowed, then rejected below

    try:
        return parse_python(transform(cell.source))
    except (RecursionError, MemoryError) as err:  # `x = 1+1+...+1`, 20,000 terms
        raise _error(
            cell,
            None,
            f"the {what} cell holds an expression nested too deeply for Python to read "
            f"(more than about {EXPRESSION_DEPTH} levels)",
            "write the value out as a literal (e.g. x = 20000), or compute it in a step",
            path,
        ) from err
    except SyntaxError as err:
        raise _error(
            cell,
            err.lineno,
            f"the {what} cell is not valid Python: {err.msg}",
            "correct the syntax",
            path,
        ) from err


@dataclass
class Parameters:
    """What the parameters cells declare: the parameters, and the statements of papermill-style
    cells that are not parameters (one ``Cell`` per such cell, with that cell's index)."""

    params: dict[str, Param] = field(default_factory=dict)
    statements: list[Cell] = field(default_factory=list)


def parse_parameters(cells: list[Cell], path: str | None = None) -> dict[str, Param]:
    """Read parameters cells, in order (a later assignment overrides an earlier one); every
    statement must be a literal assignment (Kale's ``pipeline-parameters``)."""
    return read_parameters(cells, path).params


def read_parameters(
    cells: list[Cell], path: str | None = None, *, papermill: Collection[int] = ()
) -> Parameters:
    """Read parameters cells, in order. Cells whose index is in ``papermill`` follow papermill's
    conventions: a statement that is not the assignment of a literal value is kept (in
    ``statements``) instead of being an error."""
    out = Parameters()
    fix = "keep only lines like `learning_rate = 0.01` in the parameters cell"
    for cell in cells:
        relaxed = cell.index in papermill
        kept: list[ast.stmt] = []
        tree = _parse(cell, "parameters", path)
        for node in tree.body:
            if _depth(node) > EXPRESSION_DEPTH:
                raise _error(
                    cell,
                    node.lineno,
                    f"this statement nests more than {EXPRESSION_DEPTH} levels deep, the limit "
                    "for a parameters cell",
                    "give the parameter a literal default (e.g. x = 20000), or compute the "
                    "value in a step",
                    path,
                )
            name, value_node, annotation = _assignment(node)
            if name is None or value_node is None:
                if relaxed:
                    kept.append(node)
                    continue
                raise _error(
                    cell,
                    node.lineno,
                    "a parameters cell may only assign literal values to names",
                    fix,
                    path,
                )
            try:
                value = ast.literal_eval(value_node)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
                if relaxed:
                    kept.append(node)
                    continue
                raise _error(
                    cell,
                    node.lineno,
                    f"the value of {name!r} is not a literal ({ast.unparse(value_node)})",
                    "compute it in a step instead, and give the parameter a literal default",
                    path,
                ) from err
            problem = value_problem(value)
            if problem is None and not finite(value):
                problem = "is not a finite number (NaN or an infinity: JSON has neither)"
            if problem is not None:
                raise _error(
                    cell,
                    node.lineno,
                    f"the default of parameter {name!r} {problem}",
                    "put the data in a file and make the parameter its path (list the file "
                    "in the notebook's kfnb.files metadata so compiled pipelines ship it)",
                    path,
                )
            try:
                kind = _type_of(value, annotation, cell, node, path)
            except NotebookError:
                if not relaxed:
                    raise
                inferred = LITERAL_TYPES.get(list if isinstance(value, tuple) else type(value))
                if inferred is None:  # a set, bytes, a complex number: papermill lists it, but
                    kept.append(node)  # it cannot be a kfnb parameter; it still runs
                    continue
                kind = inferred  # an annotation kfnb does not know (Optional[int]): the value's
            out.params[name] = Param(name, kind, value)
        if kept:
            out.statements.append(Cell(cell.index, _statements_source(cell.source, tree, kept)))
    return out


def _depth(root: ast.AST) -> int:
    """The depth of the syntax tree under ``root``, walked without recursion."""
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > EXPRESSION_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _statements_source(source: str, tree: ast.Module, kept: list[ast.stmt]) -> str:
    """The source of the ``kept`` statements of a cell: its own lines where the transformed
    source (IPython syntax made Python) has the cell's lines and no two statements share a
    line, else the transformed code."""
    from .names import transform

    lines = source.splitlines()
    spans = [(n.lineno, n.end_lineno or n.lineno) for n in tree.body]
    shared = any(a[1] >= b[0] for a, b in itertools.pairwise(spans))
    own = not shared and len(transform(source).splitlines()) == len(lines)
    parts = []
    for node in kept:
        if own and node.end_lineno is not None:
            parts.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
        else:
            parts.append(ast.unparse(node))
    return "\n".join(parts)


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None, str | None]:
    if (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
    ):
        return node.targets[0].id, node.value, None
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value, ast.unparse(node.annotation)
    return None, None, None


def _type_of(
    value: Any, annotation: str | None, cell: Cell, node: ast.stmt, path: str | None
) -> str:
    if isinstance(value, tuple):
        value = list(value)
    inferred = LITERAL_TYPES.get(type(value))
    if inferred is None:
        raise _error(
            cell,
            node.lineno,
            f"parameters must be bool, int, float, str, list or "
            f"dict values, not {type(value).__name__}",
            "use one of those types",
            path,
        )
    if annotation is None:
        return inferred
    if annotation not in ANNOTATIONS:
        raise _error(
            cell,
            node.lineno,
            f"unsupported parameter annotation {annotation!r}",
            f"annotate with one of {', '.join(sorted(ANNOTATIONS))}",
            path,
        )
    ok = (
        inferred == annotation or inferred == "any" or (annotation == "float" and inferred == "int")
    )
    if not ok:
        raise _error(
            cell,
            node.lineno,
            f"the default {value!r} is not a {annotation}",
            "make the default match the annotation",
            path,
        )
    return annotation


def parse_metrics(cells: list[Cell], path: str | None = None) -> list[str]:
    """Read metrics cells: the names printed, in order, without repeats."""
    names: list[str] = []
    for cell in cells:
        for node in _parse(cell, "pipeline-metrics", path).body:
            if not (
                isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "print"
                and len(node.value.args) == 1
                and not node.value.keywords
                and isinstance(node.value.args[0], ast.Name)
            ):
                raise _error(
                    cell,
                    node.lineno,
                    "a pipeline-metrics cell may only hold print(variable) lines",
                    "write one print(name) per metric, e.g. print(accuracy)",
                    path,
                )
            name = node.value.args[0].id
            if name not in names:
                names.append(name)
    return names
