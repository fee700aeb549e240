"""The special sections of a notebook: the parameters cells and the metrics cells.

A parameters cell (``pipeline-parameters``, or papermill's ``parameters``) holds only simple
literal assignments, ``name = literal`` or ``name: type = literal``: each becomes a ``Param``
whose type is the literal's (or the annotation's). A metrics cell (``pipeline-metrics``) holds only
``print(name)`` lines: each printed variable becomes a pipeline metric.
"""

from __future__ import annotations

import ast
from typing import Any

from ..dag import Cell, Param
from ..errors import NotebookError

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
    from .names import transform  # IPython syntax (magics) is allowed, then rejected below

    try:
        return ast.parse(transform(cell.source))
    except SyntaxError as err:
        raise _error(
            cell,
            err.lineno,
            f"the {what} cell is not valid Python: {err.msg}",
            "correct the syntax",
            path,
        ) from err


def parse_parameters(cells: list[Cell], path: str | None = None) -> dict[str, Param]:
    """Read parameters cells, in order (a later assignment overrides an earlier one)."""
    params: dict[str, Param] = {}
    fix = "keep only lines like `learning_rate = 0.01` in the parameters cell"
    for cell in cells:
        for node in _parse(cell, "parameters", path).body:
            name, value_node, annotation = _assignment(node)
            if name is None or value_node is None:
                raise _error(
                    cell,
                    node.lineno,
                    "a parameters cell may only assign literal values to names",
                    fix,
                    path,
                )
            try:
                value = ast.literal_eval(value_node)
            except ValueError as err:
                raise _error(
                    cell,
                    node.lineno,
                    f"the value of {name!r} is not a literal ({ast.unparse(value_node)})",
                    "compute it in a step instead, and give the parameter a literal default",
                    path,
                ) from err
            params[name] = Param(name, _type_of(value, annotation, cell, node, path), value)
    return params


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
