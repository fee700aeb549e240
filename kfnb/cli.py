"""The ``kfnb`` command line.

Each subcommand parses its arguments, calls one library function and renders the result. Errors
are mapped once, here: a ``KfnbError`` prints one line (``kfnb: error: ...``) and exits 2; the
traceback is shown only with ``--debug`` or ``KFNB_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .dag import Pipeline, Step
from .errors import KfnbError


def build_parser(
    prog: str = "kfnb",
    *,
    magic: bool = False,
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The command line's arguments. ``magic``: the ``%kfnb`` line magic's variant (NOTEBOOK
    optional: the kernel's own notebook by default; no ``materialize``, ``run --json/--detach``:
    a magic's run never blocks)."""
    parser = parser_class(
        prog=prog, description="Run tagged Jupyter notebooks as pipelines, locally or on Kubeflow."
    )
    parser.add_argument("--version", action="version", version=f"kfnb {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    notebook: dict[str, Any] = {"type": Path}
    if magic:
        notebook.update(
            nargs="?", default=None, help="the notebook (default: the one this kernel belongs to)"
        )

    describe = sub.add_parser("describe", help="show the pipeline a notebook defines")
    describe.add_argument("notebook", **notebook)
    describe.add_argument("--json", action="store_true", help="print the pipeline IR as JSON")
    describe.set_defaults(func=cmd_describe)
    if not magic:
        _add_materialize(sub)
    _add_compile(sub, notebook)
    _add_run(sub, notebook, magic)
    _add_runs_and_more(sub)
    return parser


def _add_materialize(sub: Any) -> None:
    mat = sub.add_parser("materialize", help="write one runnable notebook per step")
    mat.add_argument("notebook", type=Path)
    mat.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    mat.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder where steps exchange values (default: OUTPUT/data)",
    )
    mat.set_defaults(func=cmd_materialize)


def _add_compile(sub: Any, notebook: dict[str, Any]) -> None:
    comp = sub.add_parser(
        "compile", help="compile a notebook to a Kubeflow Pipelines v2 pipeline (IR YAML)"
    )
    comp.add_argument("notebook", **notebook)
    comp.add_argument("-o", "--output", type=Path, required=True, help="the YAML file to write")
    comp.add_argument(
        "--image",
        help="base image of steps that name none (default: the "
        "notebook's, else the config file's, else kfnb's runtime image)",
    )
    comp.add_argument(
        "--accelerator",
        metavar="RESOURCE",
        help="what a step's GPU count asks for (default: nvidia.com/gpu)",
    )
    comp.add_argument(
        "--package",
        action="append",
        default=[],
        metavar="REQ",
        help="pip-install REQ when a step's pod starts (repeatable; default: "
        "none, the image holds what steps need)",
    )
    comp.add_argument(
        "--no-cache", action="store_true", help="never let KFP reuse a cached result of a step"
    )
    comp.add_argument(
        "--run-local",
        action="store_true",
        help="then run the compiled pipeline here with KFP's local runner "
        "(kfp.local: the pods' code, without a cluster)",
    )
    comp.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter value for --run-local",
    )
    comp.set_defaults(func=cmd_compile)


def _add_run(sub: Any, notebook: dict[str, Any], magic: bool) -> None:
    run = sub.add_parser(
        "run",
        help="run a notebook as a pipeline"
        + (" (the saved file; returns at once)" if magic else ""),
    )
    run.add_argument("notebook", **notebook)
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter value (repeatable)",
    )
    run.add_argument("-f", "--params-file", type=Path, help="YAML file of parameter values")
    run.add_argument("--backend", default="local", help="where to run (default: local)")
    run.add_argument(
        "--max-parallel",
        type=int,
        default=None,
        help="most steps at once (local; default: twice the CPU count, at least 8)",
    )
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="run every step, even those whose results an earlier run holds",
    )
    run.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE once in the kernel fork server, for every step's "
        "kernel (local; repeatable, e.g. --preload numpy --preload pandas)",
    )
    kfp = run.add_argument_group("Kubeflow Pipelines (--backend kfp)")
    kfp.add_argument(
        "--host",
        help="the KFP API URL (default: $KFNB_KFP_HOST, the config "
        "file, or the in-cluster service inside a Kubeflow notebook pod)",
    )
    kfp.add_argument("--namespace", help="the Kubeflow profile namespace to run in")
    kfp.add_argument(
        "--experiment",
        help="the experiment (created if missing; default: the notebook's, else the pipeline name)",
    )
    kfp.add_argument("--image", help="base image of steps that name none")
    if not magic:
        kfp.add_argument(
            "--detach",
            action="store_true",
            help="submit and return; follow later with `kfnb show RUN`",
        )
        run.add_argument("--json", action="store_true", help="print the final run record as JSON")
    run.set_defaults(func=cmd_run)


def _add_runs_and_more(sub: Any) -> None:
    runs = sub.add_parser("runs", help="list recent runs")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)

    show = sub.add_parser("show", help="show one run")
    show.add_argument("run")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)

    logs = sub.add_parser("logs", help="print the logs of a run's steps")
    logs.add_argument("run")
    logs.add_argument("step", nargs="?")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until it ends")
    logs.set_defaults(func=cmd_logs)

    cancel = sub.add_parser("cancel", help="stop a running run")
    cancel.add_argument("run")
    cancel.set_defaults(func=cmd_cancel)


def main(argv: Sequence[str] | None = None) -> int:
    from ._startup import skip_slow_optional_imports

    skip_slow_optional_imports()
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
    print(f"wrote {len(written)} step notebooks to {args.output} (run order: {' -> '.join(order)})")
    for name in order:
        print(f"  {written[name]}")
    return 0


def _store() -> Any:
    from .tracking import Store

    store = Store()
    store.recover()
    return store


def run_options(args: argparse.Namespace, *, pool_size: int | None) -> dict[str, Any]:
    """The backend options ``run`` arguments ask for (``pool_size``: kernels the local backend
    keeps warm in this process after the run; None: its default)."""
    options: dict[str, Any] = {"max_parallel": args.max_parallel} if args.max_parallel else {}
    remote = {
        k: getattr(args, k)
        for k in ("host", "namespace", "experiment", "image")
        if getattr(args, k)
    }
    detach = getattr(args, "detach", False)
    if args.backend == "local":
        if remote or detach:
            given = ", ".join(f"--{k}" for k in [*remote, *(["detach"] if detach else [])])
            raise KfnbError(
                f"{given}: only for --backend kfp. Fix: add --backend kfp, or drop them to run here"
            )
        options.update(cache=not args.no_cache, preload=tuple(args.preload))
        if pool_size is not None:
            options["pool_size"] = pool_size
    else:
        options.update(remote)
        if args.no_cache:
            options["cache"] = False
    return options


def start_run(args: argparse.Namespace, *, pool_size: int | None) -> Any:
    """Parse the notebook, check the parameters, submit; the ``PipelineRun``, not waited for."""
    from .api import run
    from .params import load_params_file, resolve_params

    options = run_options(args, pool_size=pool_size)
    pipeline = Pipeline.from_notebook(args.notebook)
    values = load_params_file(args.params_file) if args.params_file else {}
    params = resolve_params(pipeline, values, [tuple(p) for p in args.param])
    return run(pipeline, params, backend=args.backend, wait=False, store=_store(), **options)


def cmd_run(args: argparse.Namespace) -> int:
    from . import progress

    # this process ends with the run: keep no kernels warm after it
    result = start_run(args, pool_size=0)
    out = sys.stderr if args.json else sys.stdout
    record = result.record
    if record.remote:
        print(
            f"submitted run {record.id} to {record.remote.get('host')}: {record.remote.get('url')}",
            file=out,
            flush=True,
        )
        if args.detach:
            print(f"follow it with: kfnb show {record.id}", file=out)
            if args.json:
                print(json.dumps(record.to_dict(), indent=2, default=repr))
            return 0
    try:
        record = progress.follow(
            lambda: result.record, out=out, sleep=lambda seconds: result.wait(timeout=seconds)
        )
    except KeyboardInterrupt:
        print("\nkfnb: cancelling...", file=sys.stderr)
        result.cancel()
        result.wait()
        record = result.record
    if args.json:
        print(json.dumps(record.to_dict(), indent=2, default=repr))
    else:
        print("\n".join(progress.summary(record)))
    return 0 if record.status == "SUCCEEDED" else 1


def cmd_compile(args: argparse.Namespace) -> int:
    from .api import compile

    pipeline = Pipeline.from_notebook(args.notebook)
    compiled = compile(
        pipeline,
        args.output,
        image=args.image,
        accelerator=args.accelerator,
        packages=args.package,
        cache=not args.no_cache,
    )
    order = [s.name for s in pipeline.toposort()]
    print(
        f"wrote {args.output}: Kubeflow Pipelines v2 pipeline {compiled.name!r}, "
        f"{len(order)} steps ({' -> '.join(order)})"
    )
    if compiled.parameters:
        print("  parameters: " + ", ".join(f"{k}: {v}" for k, v in compiled.parameters.items()))
    for step in pipeline.steps:
        extra = [f"{k}={v}" for k, v in step.resources.items() if k not in ("cpu", "memory")]
        if extra:
            print(f"  {step.name}: " + ", ".join(extra))
    if not args.run_local:
        print(f"submit it: kfnb run {args.notebook} --backend kfp --host URL")
        return 0
    from .backends.kfp.local_run import run_compiled
    from .params import resolve_params

    params = resolve_params(pipeline, {}, [tuple(p) for p in args.param])
    print("running it with kfp.local ...", flush=True)
    started = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):  # kfp.local's own task logs
        result = run_compiled(compiled, params)
    print(
        f"kfp.local: all {len(order)} steps succeeded in {time.monotonic() - started:.1f}s; "
        f"artifacts in {result.root}"
    )
    for name, value in result.metrics().items():
        print(f"  {name} = {value:g}")
    return 0


def _refresh(record: Any, store: Any) -> Any:
    """Bring a remote run that is still going on up to date (a warning if the cluster cannot
    be asked); return its record."""
    if record.remote is None or record.done:
        return record
    from .backends import get_backend

    try:
        get_backend(record.backend)().attach(store, record.id).refresh()
    except KfnbError as err:
        print(f"kfnb: warning: run {record.id} shows its last known state: {err}", file=sys.stderr)
    return store.get_run(record.id)


def cmd_runs(args: argparse.Namespace) -> int:
    from .progress import elapsed

    store = _store()
    notebook = getattr(args, "notebook", None)  # the %kfnb magic lists its notebook's runs
    listed = store.list_runs(limit=args.limit, notebook=notebook and Path(notebook).resolve())
    records = [_refresh(r, store) for r in listed]
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2, default=repr))
        return 0
    if not records:
        print(
            f"no runs of {notebook} yet"
            if notebook
            else "no runs yet: start one with `kfnb run NOTEBOOK`"
        )
        return 0
    rows = [("ID", "NAME", "STATUS", "STARTED", "TOOK", "BACKEND")]
    for r in records:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at or 0))
        rows.append(
            (
                r.id,
                r.name,
                r.status,
                started,
                elapsed(r.started_at or r.created_at, r.finished_at),
                r.backend,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from . import progress

    store = _store()
    record = _refresh(store.get_run(args.run), store)
    if args.json:
        print(json.dumps(record.to_dict(), indent=2, default=repr))
        return 0
    print("\n".join(progress.render(record)))
    if record.remote and record.remote.get("url"):
        print(f"  on {record.remote.get('host')}: {record.remote['url']}")
    if record.params:
        print("  params: " + ", ".join(f"{k}={v!r}" for k, v in record.params.items()))
    print("\n".join(progress.summary(record)[1:]))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from .tracking import TERMINAL_RUN, TERMINAL_STEP

    store = _store()
    record = store.get_run(args.run)
    steps = [record.step(args.step)] if args.step else record.steps
    offsets: dict[str, int] = {}
    while True:
        record = store.get_run(record.id)
        for s in steps:
            current = record.step(s.name)
            if not current.log or not Path(current.log).exists():
                continue
            with open(current.log, "rb") as f:
                f.seek(offsets.get(s.name, 0))
                chunk = f.read()
            if chunk:
                if not args.step and s.name not in offsets:
                    print(f"==> {s.name} <==", flush=True)
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
                offsets[s.name] = offsets.get(s.name, 0) + len(chunk)
        done = (
            record.step(args.step).status in TERMINAL_STEP
            if args.step
            else record.status in TERMINAL_RUN
        )
        if not args.follow or done:
            return 0
        time.sleep(0.3)


def cmd_cancel(args: argparse.Namespace) -> int:
    from .tracking import TERMINAL_RUN

    store = _store()
    record = store.get_run(args.run)
    if record.status in TERMINAL_RUN:
        print(f"run {record.id} already ended: {record.status}")
        return 0
    from .backends import get_backend

    handle = get_backend(record.backend)().attach(store, record.id)
    handle.cancel()
    handle.wait(timeout=60)
    record = store.get_run(record.id)
    print(f"run {record.id}: {record.status}")
    return 0 if record.status == "CANCELED" else 1


# -- rendering ------------------------------------------------------------------------------
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
            out.append(f"  {name:<{width}}  {p.type:<5}  {p.default!r}")
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
