"""The parameter sets of a sweep: a ``grid`` (a dict of lists is their product, a list of such
dicts the union of their products, as ploomber's ``grid:``), or ``sets`` (a list of dicts, or a
CSV file: one set per row, each value typed by the notebook's parameters cell). Every set is
checked against the notebook's parameters before anything runs."""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..params import (
    ParameterError,
    check_value,
    parse_string,
    read_text_file,
    read_yaml_file,
    short,
)

if TYPE_CHECKING:
    from ..dag import Pipeline


class SetError(ParameterError):
    """A sweep whose sets cannot run: an unknown parameter, a wrong type, no sets at all."""


def expand_grid(grid: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The sets of ``grid``: the product of a dict's lists (a value that is no list is one
    value), the union (in order, without repeats) of a list of such dicts."""
    parts = [grid] if isinstance(grid, Mapping) else list(grid)
    out: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, Mapping):
            raise SetError(
                f"a grid is a mapping of parameter names to lists of values, not "
                f"{type(part).__name__} {short(part)}",
                fix="grid={'lr': [0.1, 0.01], 'seed': [1, 2]}",
            )
        names = [str(n) for n in part]
        values = [v if isinstance(v, list) else [v] for v in part.values()]
        for empty in (n for n, v in zip(names, values, strict=True) if not v):
            raise SetError(f"the grid gives no values for {empty!r}", fix="list at least one")
        for combo in itertools.product(*values):
            row = dict(zip(names, combo, strict=True))
            if row not in out:
                out.append(row)
    return out


def load_grid_file(path: str | os.PathLike[str]) -> Any:
    """A grid from a YAML (or JSON) file: a mapping, or a list of mappings."""
    fix = "map each swept parameter to a list of values, e.g. `lr: [0.1, 0.01]`"
    try:
        data, _ = read_yaml_file(Path(path), "grid file", fix)
    except ParameterError as err:  # names the file and the line, never what it holds
        raise SetError(err.message, fix=err.fix) from None
    return data


def read_csv(pipeline: Pipeline, path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """One set per row of the CSV file ``path`` (a header row of parameter names); each cell
    is typed by the parameters cell (an empty cell leaves the parameter at its default)."""
    p = Path(path)
    fix = "write a header row of parameter names, then one set per row"
    try:
        text = read_text_file(p, "sets file", fix)
    except ParameterError as err:  # names the file and the line, never what it holds
        raise SetError(err.message, fix=err.fix) from None
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise SetError(
            f"the sets file {short(str(p), 200)} is no CSV kfnb can read: {err}", fix=fix
        ) from None
    out: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        values: dict[str, Any] = {}
        for name, text in row.items():
            if name is None or text is None or text == "":
                continue
            try:
                values[name.strip()] = parse_string(pipeline, name.strip(), text)
            except ParameterError as err:
                raise SetError(f"{p.name} line {number}: {err.message}", fix=err.fix) from err
        out.append(values)
    return out


def make_sets(
    pipeline: Pipeline,
    grid: Any = None,
    sets: Any = None,
    fixed: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The checked, typed sets of a sweep (each holds only what it sets; ``fixed`` values are
    checked too and must not be swept)."""
    if (grid is None) == (sets is None):
        raise SetError(
            "a batch takes a grid or sets (one of them)",
            fix="kfnb.batch(nb, grid={'lr': [0.1, 0.01]}) or kfnb.batch(nb, sets='sets.csv')",
        )
    if grid is not None:
        if isinstance(grid, (str, os.PathLike)):
            grid = load_grid_file(grid)
        raw = expand_grid(grid)
    elif isinstance(sets, (str, os.PathLike)):
        raw = read_csv(pipeline, sets)
    else:
        raw = [dict(s) for s in sets]
        for s in raw:
            if not all(isinstance(k, str) for k in s):
                raise SetError(f"a set maps parameter names to values, not {short(s)}")
    if not raw:
        raise SetError("the batch has no parameter sets", fix="give at least one")
    fixed = dict(fixed or {})
    known = ", ".join(pipeline.parameters) or "none (the notebook has no parameters cell)"
    for i, values in enumerate(raw):
        for name in values:
            if name not in pipeline.parameters:
                raise SetError(
                    f"set {i} sets {short(name)}, which is no parameter of {pipeline.name!r}",
                    fix=f"the notebook's parameters: {known}",
                )
        both = sorted(set(values) & set(fixed))
        if both:
            raise SetError(
                f"{', '.join(map(repr, both))} is both swept and fixed (set {i})",
                fix="leave it out of params, or out of the sets",
            )
        try:
            raw[i] = {n: check_value(pipeline, n, v) for n, v in values.items()}
        except ParameterError as err:
            raise SetError(f"set {i}: {err.message}", fix=err.fix) from err
    return raw


def swept(sets: Sequence[Mapping[str, Any]]) -> list[str]:
    """The parameters the sets set, in first-seen order."""
    names: list[str] = []
    for s in sets:
        names += [n for n in s if n not in names]
    return names
