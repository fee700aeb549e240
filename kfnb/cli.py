"""The ``kfnb`` command line.

Each subcommand parses its arguments, calls one library function and renders the result. Errors
are mapped once, here: a ``KfnbError`` prints one line (``kfnb: error: ...``) and exits 2; the
traceback is shown only with ``--debug`` or ``KFNB_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .dag import Pipeline, Step
from .errors import KfnbError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kfnb", description="Run tagged Jupyter notebooks as pipelines, locally or on "
        "Kubeflow.")
    parser.add_argument("--version", action="version", version=f"kfnb {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    describe = sub.add_parser("describe", help="show the pipeline a notebook defines")
    describe.add_argument("notebook", type=Path)
    describe.add_argument("--json", action="store_true", help="print the pipeline IR as JSON")
    describe.set_defaults(func=cmd_describe)

    mat = sub.add_parser("materialize", help="write one runnable notebook per step")
    mat.add_argument("notebook", type=Path)
    mat.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    mat.add_argument("--data-dir", type=Path, default=None,
                     help="folder where steps exchange values (default: OUTPUT/data)")
    mat.set_defaults(func=cmd_materialize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("KFNB_DEBUG") not in (None, "", "0")
    try:
        return int(args.func(args) or 0)
    except KfnbError as err:
        if debug:
            traceback.print_exc()
        print(f"kfnb: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kfnb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kfnb describe ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def cmd_describe(args: argparse.Namespace) -> int:
    pipeline = Pipeline.from_notebook(args.notebook)
    if args.json:
        print(json.dumps(pipeline.to_dict(), indent=2, default=repr))
    else:
        print(render(pipeline))
    return 0


def cmd_materialize(args: argparse.Namespace) -> int:
    from .materialize import write_step_notebooks

    pipeline = Pipeline.from_notebook(args.notebook)
    written = write_step_notebooks(pipeline, args.output, data_dir=args.data_dir)
    order = [s.name for s in pipeline.toposort()]
    print(f"wrote {len(written)} step notebooks to {args.output} (run order: "
          f"{' -> '.join(order)})")
    for name in order:
        print(f"  {written[name]}")
    return 0


# -- rendering ------------------------------------------------------------------------------
def render(pipeline: Pipeline) -> str:
    """The pipeline as a person reads it."""
    out = [f"Pipeline {pipeline.name}" + (f"  ({pipeline.source})" if pipeline.source else "")]
    if pipeline.description:
        out.append(f"  {pipeline.description}")
    if pipeline.experiment or pipeline.image:
        extra = [f"experiment: {pipeline.experiment}"] if pipeline.experiment else []
        extra += [f"image: {pipeline.image}"] if pipeline.image else []
        out.append("  " + "   ".join(extra))
    if pipeline.parameters:
        out.append("")
        out.append("Parameters")
        width = max(len(n) for n in pipeline.parameters)
        for name, p in pipeline.parameters.items():
            out.append(f"  {name:<{width}}  {p.type:<5}  {p.default!r}")
    if pipeline.prelude:
        out.append("")
        out.append("Prelude (run at the start of every step): cells "
                   + _cells(pipeline.prelude_cell_indices()))
    shared = set.intersection(*(set(_settings(s)) for s in pipeline.steps)) \
        if len(pipeline.steps) > 1 else set()
    if shared:
        out.append("")
        out.append("Every step: " + "  ".join(x for x in _settings(pipeline.steps[0])
                                              if x in shared))
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
