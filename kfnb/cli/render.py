"""Text the ``kfnb`` command line prints: a pipeline (``describe``), a run with its tree and the
pipeline it ran (``show``), the runs table (``runs``) and the backends (``backends``).

Runs are rendered from their records alone: ``show`` draws the pipeline stored with the run
(``Run.pipeline``, the ``kfnb.spec`` view), never the notebook file, so an edited notebook
leaves an old run as it ran. Marks, durations and times come from ``kfnb.format``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..backends import Availability, Option
from ..dag import Pipeline, Step
from ..format import mark, timestamp, took
from ..params import short
from ..tracking import Run

#: (depth, run): a run and the runs under it, depth first, oldest child first
TreeRows = Sequence[tuple[int, Run]]


# -- a run ---------------------------------------------------------------------------------
def run_tree(rows: TreeRows, now: float | None = None) -> list[str]:
    """The runs under a run, indented by depth (the run itself, depth 0, is left out)."""
    if len(rows) <= 1:
        return []
    lines = [f"Children ({sum(1 for depth, _ in rows if depth == 1)})"]
    for depth, r in rows[1:]:
        lines.append(
            "  " * depth
            + f"{mark(r.status)} {r.id}  {r.kind}  {r.name}  {r.status}  {took(r, now)}".rstrip()
        )
    return lines


def run_spec(record: Run) -> list[str]:
    """The pipeline a run ran, as stored with it: steps in run order, each with the edges
    into it and the variables they carry. A pipeline run recorded before runs kept their
    pipeline says so (nothing is read from the notebook)."""
    view = record.pipeline
    if view is None:
        if record.kind != "pipeline":
            return []
        names = ", ".join(s.name for s in record.steps)
        return [
            f"Pipeline: not stored with this run (recorded before runs kept it); steps: {names}"
        ]
    return pipeline_view(view)


def pipeline_view(view: Mapping[str, Any]) -> list[str]:
    """A stored pipeline view (``kfnb.spec.pipeline_view``) as text."""
    steps = {str(s.get("name")): s for s in view.get("steps") or []}
    order = [str(n) for n in view.get("order") or steps]
    into: dict[str, list[Mapping[str, Any]]] = {}
    for edge in view.get("edges") or []:
        into.setdefault(str(edge.get("target")), []).append(edge)
    lines = [f"Pipeline {view.get('name')} as it ran ({len(order)} steps, in run order)"]
    params = view.get("parameters") or {}
    if params:
        lines.append(
            "  parameters: " + ", ".join(f"{k}: {p.get('type')}" for k, p in params.items())
        )
    width = max((len(n) for n in order), default=4)
    for name in order:
        cells = (steps.get(name) or {}).get("cells") or []
        lines.append(f"  {name:<{width}}  (cells {_cells(cells)})")
        for edge in into.get(name, []):
            variables = ", ".join(edge.get("variables") or [])
            lines.append(f"      <- {edge.get('source')}" + (f"  {variables}" if variables else ""))
    return lines


# -- runs and backends ---------------------------------------------------------------------------
def runs_table(
    records: Sequence[Run],
    children: Mapping[str, int],
    sizes: Mapping[str, int] | None = None,
) -> list[str]:
    """One aligned row per run; ``children``: how many runs are under each (shown when any);
    ``sizes``: the disk use of each one's artifacts folder (``kfnb.retention.disk_usage``)."""
    from ..retention import human_bytes

    sizes = sizes or {}
    rows = [("ID", "NAME", "STATUS", "STARTED", "TOOK", "KIND", "CHILDREN", "SIZE", "BACKEND")]
    for r in records:
        count = children.get(r.id, 0)
        rows.append(
            (
                r.id,
                r.name,
                r.status,
                timestamp(r.created_at),
                took(r),
                r.kind,
                str(count) if count else "",
                human_bytes(sizes.get(r.id)),
                r.backend,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def backends(found: Sequence[tuple[Availability, Sequence[Option]]]) -> list[str]:
    """Each backend: available or not (and why, with what to do), then its options."""
    lines: list[str] = []
    for entry, options in found:
        if lines:
            lines.append("")
        state = "available" if entry.available else "not available"
        lines.append(f"{entry.name}: {state}: {entry.detail}")
        if entry.fix:
            lines.append(f"  Fix: {entry.fix}")
        shown = [o for o in options if not o.hidden]
        width = max((len(o.name) for o in shown), default=0)
        for o in shown:
            default = "" if o.default in (None, (), []) else f" = {_default(o.default)}"
            env = f"  [${', $'.join(o.env)}]" if o.env else ""
            lines.append(f"  {o.name:<{width}}  {o.type}{default}{env}")
            lines.append(f"  {'':<{width}}    {o.help}")
    return lines


def _default(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- a pipeline (describe) ---------------------------------------------------------------------
def render(pipeline: Pipeline) -> str:
    """The pipeline as a person reads it."""
    out = [f"Pipeline {pipeline.name}" + (f"  ({pipeline.source})" if pipeline.source else "")]
    if pipeline.description:
        out.append(f"  {pipeline.description}")
    if pipeline.experiment or pipeline.image or pipeline.files:
        extra = [f"experiment: {pipeline.experiment}"] if pipeline.experiment else []
        extra += [f"image: {pipeline.image}"] if pipeline.image else []
        extra += [f"files: {', '.join(pipeline.files)}"] if pipeline.files else []
        out.append("  " + "   ".join(extra))
    if pipeline.parameters:
        out.append("")
        out.append("Parameters")
        width = max(len(n) for n in pipeline.parameters)
        for name, p in pipeline.parameters.items():
            out.append(f"  {name:<{width}}  {p.type:<5}  {short(p.default, 80)}")
    if pipeline.prelude:
        out.append("")
        out.append(
            "Prelude (run at the start of every step): cells "
            + _cells(pipeline.prelude_cell_indices())
        )
    shared = (
        set.intersection(*(set(_settings(s)) for s in pipeline.steps))
        if len(pipeline.steps) > 1
        else set()
    )
    if shared:
        out.append("")
        out.append(
            "Every step: " + "  ".join(x for x in _settings(pipeline.steps[0]) if x in shared)
        )
    out.append("")
    out.append(f"Steps ({len(pipeline.steps)}), in run order")
    for step in pipeline.toposort():
        out.extend(_render_step(step, shared))
    if pipeline.metrics:
        out.append("")
        out.append("Metrics")
        for m in pipeline.metrics:
            out.append(f"  {m.name}  <- {m.step}")
    return "\n".join(out)


def _settings(step: Step) -> list[str]:
    settings = [f"{k}={v}" for k, v in step.resources.items()]
    settings += [f"image={step.image}"] if step.image else []
    settings += [f"retries={step.retries}"] if step.retries else []
    settings += [f"timeout={step.timeout:g}s"] if step.timeout else []
    settings += [f"label {k}={v}" for k, v in step.labels.items()]
    settings += [f"annotation {k}={v}" for k, v in step.annotations.items()]
    settings += [f"env {k}={v}" for k, v in step.env.items()]
    settings += [f"node-selector {k}={v}" for k, v in step.node_selector.items()]
    settings += [f"toleration {t}" for t in step.tolerations]
    return settings


def _render_step(step: Step, shared: set[str]) -> list[str]:
    head = f"  {step.name}"
    head += f"  (cells {_cells([c.index for c in step.cells])})"
    if step.after:
        head += f"  after {', '.join(step.after)}"
    lines = [head]
    settings = [x for x in _settings(step) if x not in shared]
    if settings:
        lines.append("      " + "  ".join(settings))
    by_source: dict[str, list[str]] = {}
    for var, provider in step.inputs.items():
        by_source.setdefault(provider, []).append(var)
    for provider, names in by_source.items():
        lines.append(f"      in   {', '.join(sorted(names))}  <- {provider}")
    if step.imports:
        lines.append(f"      imports  {', '.join(sorted(step.imports))}")
    if step.outputs:
        lines.append(f"      out  {', '.join(step.outputs)}")
    return lines


def _cells(indices: Sequence[int]) -> str:
    """Compact ranges: [1, 2, 3, 7] -> '1-3, 7'."""
    parts: list[str] = []
    for i in indices:
        if parts and parts[-1].split("-")[-1] == str(i - 1):
            parts[-1] = parts[-1].split("-")[0] + f"-{i}"
        else:
            parts.append(str(i))
    return ", ".join(parts) or "none"
