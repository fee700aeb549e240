"""The pipeline IR: one representation that every backend and surface works from.

A ``Pipeline`` is an ordered list of ``Step``s (notebook order), the pipeline ``Param``s, the
*prelude* (the ``imports`` and ``functions`` cells that run at the start of every step) and the
metrics to record. Each step holds the user's cells it runs and, once linked, its variable flow:

- ``inputs``: variable -> the upstream step whose value it receives (marshalled),
- ``imports``: variable -> an import statement re-run in the step instead of passing a module,
- ``outputs``: variables it must save because a downstream step reads them,
- ``after``: every upstream step (explicit ``prev:`` edges plus the edges data flow implies).

Variable flow follows the notebook: a step that reads ``x`` receives it from the *latest* step
above it that binds, mutates or deletes ``x``. That is exactly the value ``x`` would have if the
notebook ran top to bottom, so steps run separately give the same results as the notebook. The
per-step facts (what each step reads and writes) come from static analysis done by the parser
(``kfnb.notebook.names``); this module only links them, validates the graph and orders it. It
knows nothing of notebooks on disk, kernels or papermill.
"""

from __future__ import annotations

import difflib
import keyword
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import NotebookError, PipelineError

if TYPE_CHECKING:
    import nbformat

STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
RESERVED_STEP_NAMES = frozenset(
    {
        "imports",
        "functions",
        "parameters",
        "pipeline-parameters",
        "pipeline-metrics",
        "metrics",
        "skip",
        "kfnb",
    }
)
RESERVED_PREFIX = "kfnb_"
GPU = "nvidia.com/gpu"


class CodeFacts(Protocol):
    """What static analysis tells about a step's code (see ``kfnb.notebook.names.Names``)."""

    reads: frozenset[str]
    deferred_reads: frozenset[str]
    writes: frozenset[str]
    mutates: frozenset[str]
    deletes: frozenset[str]
    conditional: frozenset[str]
    imports: Mapping[str, str]
    builtin_reads: frozenset[str]


@dataclass(frozen=True)
class Param:
    """A pipeline parameter: a literal default whose type fixes what values it accepts."""

    name: str
    type: str
    default: Any

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "default": self.default}


@dataclass(frozen=True)
class Cell:
    """A code cell of the user's notebook: its position there and the code a step runs."""

    index: int
    source: str

    @property
    def first_line(self) -> str:
        return next((ln.strip() for ln in self.source.splitlines() if ln.strip()), "")


@dataclass(frozen=True)
class Metric:
    """A variable recorded as a pipeline metric, and the step whose value is recorded."""

    name: str
    step: str


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration: lets a step's pod run on nodes with a matching taint.

    ``operator`` is ``Equal`` (the taint's value must be ``value``) or ``Exists`` (any value);
    ``effect`` ``None`` tolerates every effect. ``str()`` gives the kubectl taint form back:
    ``KEY=VALUE:EFFECT``, ``KEY:EFFECT`` or ``KEY``.
    """

    key: str
    operator: str = "Equal"
    value: str | None = None
    effect: str | None = None

    def to_dict(self) -> dict[str, str]:
        fields = {
            "key": self.key,
            "operator": self.operator,
            "value": self.value,
            "effect": self.effect,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def __str__(self) -> str:
        spec = self.key
        if self.operator == "Equal" and self.value is not None:
            spec += f"={self.value}"
        return f"{spec}:{self.effect}" if self.effect else spec


@dataclass
class Step:
    """One pipeline step: some consecutive cells of the notebook, run in one kernel."""

    name: str
    cells: list[Cell] = field(default_factory=list)
    explicit_after: list[str] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    timeout: float | None = None
    cache: bool = True  # may reuse an earlier run's results when its content hash matches
    env: dict[str, str] = field(default_factory=dict)  # set in the step's kernel / container
    node_selector: dict[str, str] = field(default_factory=dict)  # Kubernetes only
    tolerations: list[Toleration] = field(default_factory=list)  # Kubernetes only
    # filled by Pipeline.link()
    after: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    facts: CodeFacts | None = field(default=None, repr=False, compare=False)

    @property
    def gpus(self) -> int:
        value = self.resources.get(GPU, "0")
        return int(value) if value.isdigit() else 0

    @property
    def first_cell(self) -> Cell | None:
        return self.cells[0] if self.cells else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "after": list(self.after),
            "inputs": dict(self.inputs),
            "imports": dict(self.imports),
            "outputs": list(self.outputs),
            "resources": dict(self.resources),
            "image": self.image,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "retries": self.retries,
            "timeout": self.timeout,
            "cache": self.cache,
            "env": dict(self.env),
            "node_selector": dict(self.node_selector),
            "tolerations": [t.to_dict() for t in self.tolerations],
            "cells": [c.index for c in self.cells],
        }


@dataclass
class Pipeline:
    """The whole pipeline. Build it with ``Pipeline.from_notebook`` or by hand, then ``link()``."""

    name: str
    steps: list[Step] = field(default_factory=list)
    parameters: dict[str, Param] = field(default_factory=dict)
    prelude: list[Cell] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    description: str = ""
    experiment: str | None = None
    image: str | None = None
    source: str | None = None
    kernel: dict[str, Any] = field(default_factory=dict)
    # data files the steps read, as globs relative to the notebook's folder: a compiled
    # pipeline carries them to the pods (locally the steps find them where they are)
    files: list[str] = field(default_factory=list)
    prelude_facts: CodeFacts | None = field(default=None, repr=False, compare=False)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_notebook(cls, path: str | Path) -> Pipeline:
        """Read a notebook file into a linked, validated pipeline."""
        from .notebook import read_pipeline  # the parser sits above the IR

        return read_pipeline(path)

    @classmethod
    def from_nb(cls, nb: nbformat.NotebookNode, path: str | Path | None = None) -> Pipeline:
        """Read an in-memory notebook (an ``nbformat`` node) into a pipeline."""
        from .notebook import parse_notebook

        return parse_notebook(nb, path)

    # -- lookups ----------------------------------------------------------------------------
    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise PipelineError(
            f"pipeline {self.name!r} has no step {name!r}"
            + _did_you_mean(name, [s.name for s in self.steps])
        )

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    @property
    def prelude_names(self) -> frozenset[str]:
        """Names the prelude (imports and functions cells) defines in every step."""
        return frozenset(self.prelude_facts.writes) if self.prelude_facts else frozenset()

    @property
    def prelude_reads(self) -> frozenset[str]:
        """Pipeline parameters the prelude reads, now or when its functions are called."""
        if self.prelude_facts is None:
            return frozenset()
        used = set(self.prelude_facts.reads) | set(self.prelude_facts.deferred_reads)
        return frozenset(used & set(self.parameters))

    def prelude_cell_indices(self) -> list[int]:
        return [c.index for c in self.prelude]

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    # -- variable flow ----------------------------------------------------------------------
    def link(self, builtins: Iterable[str] = ()) -> Pipeline:
        """Resolve variable flow from each step's ``facts``, add data edges, then validate.

        ``builtins`` are names always available (Python builtins and the kernel's own), never
        reported as undefined.
        """
        always = set(self.parameters) | set(self.prelude_names) | set(builtins)
        modules = set(self.prelude_facts.imports) if self.prelude_facts else set()
        for step in self.steps:
            step.inputs, step.imports, step.outputs = {}, {}, []
        positions = {s.name: i for i, s in enumerate(self.steps)}
        for position, step in enumerate(self.steps):
            facts = step.facts
            if facts is None:
                continue
            needed = set(facts.reads) | (set(facts.deferred_reads) - set(facts.writes))
            # a builtin name (input, id, type) that an upstream step rebound must flow too
            needed |= set(getattr(facts, "builtin_reads", ()))
            for var in sorted(needed):
                optional = var in always or var in facts.conditional or var not in facts.reads
                self._resolve(step, var, position, positions, modules, optional=optional)
        for step in self.steps:
            upstream = set(step.explicit_after) | set(step.inputs.values())
            step.after = _in_order(self.steps, upstream)
            step.outputs = sorted(set(step.outputs))
        self._link_metrics()
        self.validate()
        return self

    def _resolve(
        self,
        step: Step,
        var: str,
        position: int,
        positions: dict[str, int],
        modules: set[str],
        *,
        optional: bool,
    ) -> None:
        """Find where ``step`` gets ``var`` from and record the edge (or raise if nowhere)."""
        provider = self._provider(var, position, modules)
        if provider is None:
            if not optional:
                raise self._undefined(step, var, position)
            return
        pfacts = provider.facts
        assert pfacts is not None
        if var in pfacts.deletes:
            raise self._step_error(
                step,
                f"step {step.name!r} reads {var!r}, but step {provider.name!r} "
                f"deletes it (del {var})",
                f"remove the `del {var}` from step {provider.name!r} or stop reading "
                f"{var!r} in step {step.name!r}",
            )
        if var in pfacts.imports:
            step.imports[var] = pfacts.imports[var]
            return
        step.inputs[var] = provider.name
        provider.outputs.append(var)
        # A provider that binds ``var`` only on some paths must hand on the value it received
        # when its own binding did not happen, exactly as the notebook run top to bottom would.
        if var in pfacts.conditional and var not in provider.inputs:
            self._resolve(
                provider, var, positions[provider.name], positions, modules, optional=True
            )

    def _provider(self, var: str, position: int, modules: Collection[str] = ()) -> Step | None:
        """The latest step above ``position`` that binds, deletes or changes ``var``.

        A step that only *changes* ``var`` in place (``x.append(1)``) provides it, unless
        ``var`` is bound to a module (``np.append(...)`` "changes" ``np`` syntactically): module
        state never travels between kernels, the import is re-run instead.
        """
        mutator: Step | None = None
        for earlier in reversed(self.steps[:position]):
            f = earlier.facts
            if f is None:
                continue
            if var in f.writes or var in f.deletes:
                return earlier if var in f.imports else (mutator or earlier)
            if var in f.mutates and mutator is None:
                mutator = earlier
        return None if var in modules else mutator

    def _undefined(self, step: Step, var: str, position: int) -> NotebookError:
        later = next(
            (s for s in self.steps[position + 1 :] if s.facts and var in s.facts.writes), None
        )
        if later is not None:
            where = f"cell {later.cells[0].index}" if later.cells else "later"
            fix = (
                f"{var!r} is defined by step {later.name!r} ({where}), which comes after "
                f"{step.name!r}: move that code above, or tag the cells so it runs first"
            )
        else:
            fix = (
                f"define {var!r} in an earlier step, in an `imports`/`functions` cell, or as "
                "a pipeline parameter"
            )
        return self._step_error(
            step, f"step {step.name!r} reads variable {var!r}, which no upstream step defines", fix
        )

    def _step_error(self, step: Step, message: str, fix: str) -> NotebookError:
        cell = step.first_cell
        return NotebookError(
            message,
            cell_index=cell.index if cell else None,
            cell_line=cell.first_line if cell else None,
            fix=fix,
            path=self.source,
        )

    def _link_metrics(self) -> None:
        """Give each metric the step that records it: the latest step that provides the
        variable; for a pipeline parameter no step changes, the step that records the run's
        value of it (``_parameter_metric_step``)."""
        linked = []
        for metric in self.metrics:
            provider = self._provider(metric.name, len(self.steps))
            if provider is None and metric.name in self.parameters and self.steps:
                provider = self._parameter_metric_step(metric.name)
            if provider is None:
                raise PipelineError(
                    f"metric {metric.name!r} is not defined by any step"
                    + _did_you_mean(metric.name, [*self._all_writes(), *self.parameters]),
                    fix="print a variable that a step computes, or a pipeline parameter, in "
                    "the pipeline-metrics cell",
                )
            if metric.name not in provider.outputs:
                provider.outputs = sorted([*provider.outputs, metric.name])
            linked.append(Metric(metric.name, provider.name))
        self.metrics = linked

    def _parameter_metric_step(self, name: str) -> Step:
        """The step that records parameter ``name`` as a metric: as Kale does, the latest step
        whose code uses it, or the first step when none does. It saves the run's value."""
        for step in reversed(self.steps):
            f = step.facts
            if f is not None and name in (set(f.reads) | set(f.deferred_reads)):
                return step
        return self.steps[0]

    def parameter_metrics(self, step: Step) -> list[str]:
        """The pipeline parameters ``step`` records as metrics (their run values)."""
        return [
            m.name
            for m in self.metrics
            if m.step == step.name and m.name in self.parameters and not self._changes(step, m.name)
        ]

    @staticmethod
    def _changes(step: Step, name: str) -> bool:
        f = step.facts
        return f is not None and (name in f.writes or name in f.mutates or name in f.deletes)

    def step_parameters(self, step: Step) -> list[str]:
        """The pipeline parameters ``step`` needs, in pipeline order: those its code and the
        prelude read, and those it records as metrics."""
        used = set(self.prelude_reads) | set(self.parameter_metrics(step))
        if step.facts is not None:
            used |= set(step.facts.reads) | set(step.facts.deferred_reads)
        return [name for name in self.parameters if name in used]

    def _all_writes(self) -> list[str]:
        return sorted({w for s in self.steps if s.facts for w in s.facts.writes})

    # -- validation and order -----------------------------------------------------------------
    def validate(self) -> None:
        """Check names and edges; raise a ``PipelineError`` naming the problem and the fix."""
        if not self.steps:
            raise PipelineError(
                f"pipeline {self.name!r} has no steps",
                fix="tag a code cell with step:NAME, or keep at least one untagged code cell",
            )
        seen: set[str] = set()
        for step in self.steps:
            check_step_name(step.name)
            if step.name in seen:
                raise PipelineError(
                    f"duplicate step name {step.name!r}", fix="give each step a unique name"
                )
            seen.add(step.name)
        for step in self.steps:
            for dep in step.after:
                if dep not in seen:
                    raise PipelineError(
                        f"step {step.name!r} runs after {dep!r}, which is not a step of "
                        f"pipeline {self.name!r}" + _did_you_mean(dep, seen)
                    )
                if dep == step.name:
                    raise PipelineError(
                        f"step {step.name!r} depends on itself",
                        fix=f"remove {dep!r} from its prev/after list",
                    )
        for name in self.parameters:
            check_parameter_name(name)
        self.toposort()

    def toposort(self) -> list[Step]:
        """Steps in an order where every step comes after its upstream steps.

        Ties keep notebook order, so a linear notebook keeps its order. A cycle raises a
        ``PipelineError`` that shows it.
        """
        by_name = {s.name: s for s in self.steps}
        order: list[Step] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(step: Step, trail: list[str]) -> None:
            mark = state.get(step.name)
            if mark == 2:
                return
            if mark == 1:
                cycle = [*trail[trail.index(step.name) :], step.name]
                raise PipelineError(
                    "the steps form a cycle: " + " -> ".join(cycle),
                    fix="remove one of these prev/after dependencies",
                )
            state[step.name] = 1
            for dep in step.after:
                if dep in by_name:
                    visit(by_name[dep], [*trail, step.name])
            state[step.name] = 2
            order.append(step)

        for step in self.steps:
            visit(step, [])
        return order

    def downstream(self, name: str) -> list[str]:
        """Every step that (transitively) runs after ``name``, in notebook order."""
        found: set[str] = set()
        frontier = {name}
        while frontier:
            frontier = {s.name for s in self.steps if set(s.after) & frontier} - found
            found |= frontier
        return [s.name for s in self.steps if s.name in found]

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "experiment": self.experiment,
            "image": self.image,
            "source": self.source,
            "files": list(self.files),
            "parameters": {n: p.to_dict() for n, p in self.parameters.items()},
            "prelude": [c.index for c in self.prelude],
            "steps": [s.to_dict() for s in self.steps],
            "metrics": [{"name": m.name, "step": m.step} for m in self.metrics],
        }

    def edges(self) -> list[tuple[str, str]]:
        return [(dep, s.name) for s in self.steps for dep in s.after]


def check_step_name(name: str) -> None:
    """Raise a ``PipelineError`` if ``name`` cannot name a step, suggesting a valid one."""
    if name in RESERVED_STEP_NAMES:
        raise PipelineError(
            f"{name!r} is reserved and cannot name a step",
            fix=f"use another name, such as {name + '_step'!r}",
        )
    if not STEP_NAME.match(name):
        raise PipelineError(
            f"invalid step name {name!r}: use letters, digits, '_' and '-', starting with a "
            "letter or '_', at most 63 characters",
            fix=f"rename it to {sanitize_name(name)!r}",
        )


def check_parameter_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise PipelineError(
            f"invalid parameter name {name!r}: it must be a Python identifier",
            fix="rename it to a Python identifier",
        )
    if name.startswith(RESERVED_PREFIX):
        raise PipelineError(
            f"parameter {name!r} uses the reserved prefix {RESERVED_PREFIX!r}", fix="rename it"
        )


def sanitize_name(name: str) -> str:
    """A valid step name close to ``name``."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", name.strip()).strip("_-") or "step"
    if not re.match(r"[A-Za-z_]", clean):
        clean = "step_" + clean
    if clean in RESERVED_STEP_NAMES:
        clean += "_step"
    return clean[:63]


def _in_order(steps: list[Step], names: set[str]) -> list[str]:
    ordered = [s.name for s in steps if s.name in names]
    return ordered + sorted(names - set(ordered))


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
