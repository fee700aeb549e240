"""Read a notebook into the pipeline IR.

The walk follows Kale's rules so that Kale-tagged notebooks give the DAG Kale would build:

- a cell tagged ``step:NAME`` (or legacy ``block:NAME``, or starting with ``%%step NAME``)
  starts a step; untagged code cells continue the section above them (a step, the
  imports/functions prelude, the pipeline-parameters or the pipeline-metrics);
- ``skip`` cells are left out and do not end the section above them;
- papermill's ``parameters`` cell is a single cell: the cells after it continue the section that
  came before it, so plain papermill notebooks keep working; as in papermill it may hold other
  statements beside the parameters (``import os``): they run in every step, after the
  parameters' values are set (as part of the prelude, in notebook order);
- ``prev:NAME`` adds an explicit dependency on a step defined above;
- markdown and raw cells are ignored, and so are notebook-control lines (``%kfnb ...``,
  ``%load_ext kfnb``): they drive kfnb from the notebook, they are not pipeline code.

Two deliberate differences from Kale, both so that no code is lost or reordered silently: code
cells above the first step join the first step (Kale drops them), and a step name used again
further down is an error (Kale moves that code up into the earlier step, which changes the order
the code runs in). A notebook with no step tags at all is one step: the whole notebook.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dag import Cell, Metric, Pipeline, Step, check_step_name, sanitize_name
from ..errors import NotebookError, PipelineError, SourceError
from .magic import parse_header, split_header, strip_control_lines
from .names import BUILTINS, analyze
from .sections import parse_metrics, read_parameters
from .settings import Settings, read_settings
from .tags import Directive, TagError, parse_tags

PAPERMILL_TAGS = frozenset({"parameters", "injected-parameters"})


@dataclass
class _Entry:
    cell: Cell
    directive: Directive
    single: bool  # papermill's one-cell parameters section


def read_pipeline(path: str | Path) -> Pipeline:
    """Read the notebook at ``path`` into a linked, validated ``Pipeline``."""
    p = Path(path)
    return parse_notebook(read_notebook(p), p)


def read_notebook(path: Path) -> Mapping[str, Any]:
    """The notebook's JSON. Version 4 (every Jupyter since 2015) is read as plain JSON: this
    keeps ``kfnb describe`` free of nbformat's schema machinery, which takes most of a second
    to import; older versions go through nbformat's converters."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("cells", []), list):
            raise ValueError("not a notebook document")
        if data.get("nbformat") != 4:
            import nbformat

            data = nbformat.reads(json.dumps(data), as_version=4)
    except FileNotFoundError as err:
        raise NotebookError(f"no notebook at {str(path)!r}", fix="check the path") from err
    except Exception as err:  # bad JSON, or nbformat's several error types
        raise NotebookError(
            f"{str(path)!r} is not a readable notebook: {err}",
            fix="open it in Jupyter and save it again",
        ) from err
    return data


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def parse_notebook(nb: Mapping[str, Any], path: str | Path | None = None) -> Pipeline:
    """Turn an in-memory notebook into a linked, validated ``Pipeline``."""
    where = str(path) if path is not None else None
    _check_language(nb, where)
    settings = read_settings(nb.get("metadata", {}), where)
    entries = _entries(nb, where)
    walk = _Walk(where, settings)
    if any(e.directive.role == "step" for e in entries):
        for entry in entries:
            walk.add(entry)
    else:
        walk.whole_notebook(entries, _default_step_name(settings, path))
    return walk.build(nb, path)


def _check_language(nb: Mapping[str, Any], where: str | None) -> None:
    meta = nb.get("metadata", {})
    language = (
        meta.get("kernelspec", {}).get("language")
        or meta.get("language_info", {}).get("name")
        or "python"
    )
    if language.lower() != "python":
        raise NotebookError(
            f"this notebook's kernel language is {language!r}; kfnb pipelines are Python notebooks",
            fix="use a Python kernel",
            path=where,
        )


def _entries(nb: Mapping[str, Any], where: str | None) -> list[_Entry]:
    entries = []
    for index, raw in enumerate(nb.get("cells", [])):
        if raw.get("cell_type") != "code":
            continue
        tags = list(raw.get("metadata", {}).get("tags", []) or [])
        header, body = split_header(_source(raw))
        stripped = strip_control_lines(body)  # `%kfnb run` in a step would start a run
        if stripped != body and not stripped.strip() and header is None and not tags:
            continue  # a cell that only controls the notebook (`%load_ext kfnb`, `%kfnb ...`)
        cell = Cell(index, stripped)
        try:
            directive = parse_tags(tags)
            if header is not None:
                directive = directive.merge(parse_header(header))
        except TagError as err:
            raise NotebookError(
                err.message,
                cell_index=index,
                cell_line=header or cell.first_line,
                fix=err.fix,
                path=where,
            ) from err
        single = (
            directive.role == "parameters"
            and bool(PAPERMILL_TAGS & set(tags))
            and "pipeline-parameters" not in tags
            and header is None
        )
        entries.append(_Entry(cell, directive, single))
    return entries


def _default_step_name(settings: Settings, path: str | Path | None) -> str:
    stem = Path(path).stem if path is not None else (settings.name or "main")
    name = sanitize_name(stem)
    return name if name != "step" else "main"


class _Walk:
    """Accumulates sections while walking the cells in order."""

    def __init__(self, where: str | None, settings: Settings) -> None:
        self.where = where
        self.settings = settings
        self.steps: list[Step] = []
        self._own_cache: set[str] = set()  # steps whose cells say cache:on/off themselves
        self.sections: dict[str, list[Cell]] = {
            "imports": [],
            "functions": [],
            "parameters": [],
            "metrics": [],
        }
        self.current: str | None = None  # role of the section the next untagged cell joins
        self.leading: list[Cell] = []
        self.papermill: set[int] = set()  # papermill's one-cell parameters cells, by index

    def error(self, cell: Cell, message: str, fix: str | None = None) -> NotebookError:
        return NotebookError(
            message, cell_index=cell.index, cell_line=cell.first_line, fix=fix, path=self.where
        )

    def add(self, entry: _Entry) -> None:
        d, cell = entry.directive, entry.cell
        role = d.role
        if role == "skip":
            return
        if role is None:
            self._continue(cell, d)
            return
        if role == "step":
            self._step_cell(cell, d)
            return
        if self.sections["metrics"] and role != "metrics":
            raise self._metrics_not_last(cell)
        self.sections[role].append(cell)
        if entry.single:
            self.papermill.add(cell.index)
        else:
            self.current = role

    def _continue(self, cell: Cell, d: Directive) -> None:
        if self.current is None:
            if d.has_settings:
                raise self.error(
                    cell,
                    "prev:/limit:/label:/... tags need a step",
                    "add a step:NAME tag to this cell",
                )
            if cell.source.strip():
                self.leading.append(cell)
            return
        if self.current == "step":
            self._apply(self.steps[-1], d, cell)
            self.steps[-1].cells.append(cell)
            return
        if d.has_settings:
            raise self.error(
                cell,
                f"step settings cannot go on a cell of the {self.current} section",
                "put them on a step cell",
            )
        self.sections[self.current].append(cell)

    def _step_cell(self, cell: Cell, d: Directive) -> None:
        assert d.step is not None
        if self.sections["metrics"]:
            raise self._metrics_not_last(cell)
        if self.current == "step" and self.steps[-1].name == d.step:
            step = self.steps[-1]
        else:
            step = self._new_step(cell, d.step)
        self._apply(step, d, cell)
        step.cells.append(cell)
        self.current = "step"

    def _new_step(self, cell: Cell, name: str) -> Step:
        try:
            check_step_name(name)
        except PipelineError as err:
            raise self.error(cell, err.message, err.fix) from err
        earlier = next((s for s in self.steps if s.name == name), None)
        if earlier is not None:
            raise self.error(
                cell,
                f"step {name!r} is already defined at cell {earlier.cells[0].index}, "
                "with other cells in between",
                f"give this cell its own step name, or move it next to cell "
                f"{earlier.cells[-1].index}",
            )
        step = Step(name)
        if not self.steps and self.leading:
            step.cells.extend(self.leading)
            self.leading = []
        self.steps.append(step)
        return step

    def _apply(self, step: Step, d: Directive, cell: Cell) -> None:
        known = [s.name for s in self.steps if s is not step]
        for dep in d.prev:
            if dep == step.name:
                raise self.error(
                    cell, f"step {step.name!r} lists itself in prev", f"remove prev:{dep}"
                )
            if dep not in known:
                raise self.error(
                    cell,
                    f"prev:{dep} names no step defined above this cell",
                    unknown_step_fix(dep, known, lambda name: f"prev:{name}"),
                )
            if dep not in step.explicit_after:
                step.explicit_after.append(dep)
        step.resources.update(d.resources)
        step.labels.update(d.labels)
        step.annotations.update(d.annotations)
        step.env.update(d.env)
        step.node_selector.update(d.node_selector)
        step.tolerations = list(dict.fromkeys([*step.tolerations, *d.tolerations]))
        step.image = d.image or step.image
        if d.retries is not None:
            step.retries = d.retries
        if d.timeout is not None:
            step.timeout = d.timeout
        if d.cache is not None:
            step.cache = d.cache
            self._own_cache.add(step.name)

    def _metrics_not_last(self, cell: Cell) -> NotebookError:
        first = self.sections["metrics"][0]
        return self.error(
            cell,
            f"this cell comes after the pipeline-metrics cell (cell "
            f"{first.index}); metrics are the result of the whole pipeline",
            "move the pipeline-metrics cell to the end of the notebook",
        )

    def whole_notebook(self, entries: list[_Entry], name: str) -> None:
        """No step tags: every code cell but parameters, metrics and skipped ones is one step."""
        step = Step(name)
        for entry in entries:
            role = entry.directive.role
            if role in ("parameters", "metrics"):
                self.sections[role].append(entry.cell)
                if entry.single:
                    self.papermill.add(entry.cell.index)
            elif role != "skip" and entry.cell.source.strip():
                if entry.directive.prev:
                    raise self.error(
                        entry.cell,
                        "prev: tags need a step, and this notebook has no step tags",
                        "add a step:NAME tag to this cell",
                    )
                step.cells.append(entry.cell)
                self._apply(step, entry.directive, entry.cell)
        self.steps = [step] if step.cells else []

    # -- assembling the IR ------------------------------------------------------------------
    def build(self, nb: Mapping[str, Any], path: str | Path | None) -> Pipeline:
        declared = read_parameters(
            self.sections["parameters"], self.where, papermill=self.papermill
        )
        params = declared.params
        metrics = parse_metrics(self.sections["metrics"], self.where)
        prelude = self.sections["imports"] + self.sections["functions"]
        for cell in declared.statements:  # a papermill parameters cell's other statements
            after = next((i for i, c in enumerate(prelude) if c.index > cell.index), len(prelude))
            prelude.insert(after, cell)
        meta = nb.get("metadata", {})
        pipeline = Pipeline(
            name=self.settings.name or _default_step_name(self.settings, path),
            steps=self.steps,
            parameters=params,
            prelude=prelude,
            metrics=[Metric(m, "") for m in metrics],
            description=self.settings.description,
            experiment=self.settings.experiment,
            image=self.settings.image,
            files=list(self.settings.files),
            source=self.where,
            kernel={k: meta[k] for k in ("kernelspec", "language_info") if k in meta},
        )
        pipeline.prelude_facts = self._prelude(prelude, set(params))
        defaults = self.settings.defaults
        for step in self.steps:
            step.resources = {**defaults.resources, **step.resources}
            step.labels = {**defaults.labels, **step.labels}
            step.annotations = {**defaults.annotations, **step.annotations}
            step.env = {**defaults.env, **step.env}
            step.node_selector = {**defaults.node_selector, **step.node_selector}
            step.tolerations = list(dict.fromkeys([*defaults.tolerations, *step.tolerations]))
            step.image = step.image or defaults.image or self.settings.image
            if step.retries == 0 and defaults.retries is not None:
                step.retries = defaults.retries
            if step.timeout is None and defaults.timeout is not None:
                step.timeout = defaults.timeout
            if defaults.cache is not None and step.name not in self._own_cache:
                step.cache = defaults.cache
            step.facts = self._analyze(step.cells)
        return pipeline.link(BUILTINS)

    def _analyze(self, cells: list[Cell]) -> Any:
        try:
            return analyze([c.source for c in cells], deferred_mutations=True)
        except SourceError as err:
            cell = cells[err.cell]
            line = cell.source.splitlines()[err.lineno - 1] if err.lineno else cell.first_line
            raise NotebookError(
                f"line {err.lineno}: {err.msg}" if err.lineno else err.msg,
                cell_index=cell.index,
                cell_line=line,
                fix="correct the Python syntax",
                path=self.where,
            ) from err

    def _prelude(self, prelude: list[Cell], params: set[str]) -> Any:
        """Analyse the imports/functions cells, which may only read parameters."""
        if not prelude:
            return None
        facts = self._analyze(prelude)
        stray = sorted(set(facts.reads) - params - BUILTINS)
        if stray:
            cell = next((c for c in prelude if stray[0] in c.source), prelude[0])
            raise self.error(
                cell,
                f"the imports/functions cells run at the start of every "
                f"step, but they use {', '.join(map(repr, stray))}, which only "
                "a step defines",
                "move that code into a step, or make it a pipeline parameter",
            )
        return facts


def unknown_step_fix(dep: str, known: list[str], spell: Callable[[str], str] = repr) -> str:
    """The fix for an upstream step ``dep`` that no step above defines: the closest of the
    ``known`` step names (written as ``spell`` writes it), or which steps there are."""
    close = difflib.get_close_matches(dep, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {spell(close[0])}?"
    return "a step may only run after steps above it; known steps: " + (
        ", ".join(known) or "none yet"
    )
