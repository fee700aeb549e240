"""One function per ``kfnb`` subcommand: parsed arguments -> one library call -> rendering.

Every command takes the parsed arguments and the ``Settings`` its entry point read once (the
CLI's ``main``, each ``%kfnb`` call) and returns the exit status; ``dispatch`` picks it by
``args.command``. Nothing here branches on a backend's name: backend options are collected as
given and the backend types and checks them (``kfnb.run`` -> ``open_backend``); what a backend
can do is asked of the backend.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..backends import RunView, availability, get_backend
from ..backends import describe as describe_backends
from ..batching.text import batch_table
from ..config import nearest
from ..dag import Pipeline
from ..errors import KfnbError
from ..handles import attach
from ..jsonio import dumps
from ..params import short
from ..settings import Settings
from ..tracking import Run, Store
from ..tracking.models import RUN_KINDS, RunTree
from ..tuning.text import study_table, trial_line
from .parser import OPTION_FLAGS, UsageError
from .render import backends as render_backends
from .render import render as render_pipeline
from .render import run_spec, run_tree, runs_table

if TYPE_CHECKING:
    from ..api import PipelineRun

Command = Callable[[argparse.Namespace, Settings], int]


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run the subcommand ``args.command`` (arguments from ``parser.build_parser``)."""
    check_ids(args)
    return COMMANDS[args.command](args, settings)


def check_ids(args: argparse.Namespace) -> None:
    """Run ids (``show RUN``, ``--resume RUN``...) are short printable text: anything else is
    no run of this store (and never reaches a database query); ``--limit`` is a sane count."""
    for dest in ("run", "resume"):
        value = getattr(args, dest, None)
        if not isinstance(value, str):
            continue
        printable = value.isprintable() and value.encode("utf-8", "replace").decode() == value
        if not value.strip() or len(value) > 200 or not printable:
            flag = "RUN" if dest == "run" else "--resume"
            raise UsageError(
                f"{short(value)} is not a run id ({flag})",
                fix="`kfnb runs` lists the runs and their ids",
            )
    limit = getattr(args, "limit", None)
    if args.command == "runs" and isinstance(limit, int) and not 1 <= limit <= 1_000_000:
        raise UsageError(
            f"--limit {limit if abs(limit) < 10**12 else '(a huge number)'} is out of range",
            fix="list from 1 to 1000000 runs, e.g. --limit 50",
        )


def open_store(settings: Settings) -> Store:
    """The run store, with the runs of dead runner processes of this host ended."""
    store = settings.store()
    store.recover()
    return store


def _q(word: Any) -> str:
    """``word`` quoted for a POSIX shell: every command line printed for the user to paste goes
    through this, so a file name like ``x;rm -rf ~.ipynb`` stays one word."""
    return shlex.quote(str(word))


def param_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The ``-p NAME VALUE`` pairs of the command line; a name given twice is an error."""
    from ..params import check_repeats

    pairs = [(str(name), str(text)) for name, text in getattr(args, "param", None) or []]
    check_repeats(pairs)
    return pairs


def params_file(args: argparse.Namespace, notebook: Any) -> dict[str, Any] | None:
    """The values of ``-f FILE``, checked against ``notebook``'s parameters when it is one: an
    error names the file and the line, never the file's content."""
    from ..params import load_params_file

    if not getattr(args, "params_file", None):
        return None
    values = load_params_file(args.params_file)
    if notebook is None or not str(notebook).endswith(".ipynb"):
        return values
    pipeline = Pipeline.from_notebook(notebook)
    return {name: values.check(pipeline, name, value) for name, value in values.items()}


def check_input_files(args: argparse.Namespace) -> None:
    """Read the input files a command names (``--grid``, ``--sets``, ``--space``) once, up
    front, with the parameters file's checks: a missing, unreadable, huge, binary or broken
    file is an error naming the file and the line, never echoing its content."""
    from ..params import read_text_file, read_yaml_file

    for dest, what, fix in (
        ("grid", "grid file", "write NAME: [VALUE, ...] lines, e.g. lr: [0.1, 0.01]"),
        ("space", "search space file", "write NAME: {float: [LOW, HIGH]} lines"),
    ):
        path = getattr(args, dest, None)
        if path is None:
            continue
        data, _ = read_yaml_file(path, what, fix)
        items = data if isinstance(data, list) else [data]
        if not data or not all(isinstance(item, dict) for item in items):
            found = "nothing" if not data else f"a {type(data).__name__}"
            raise UsageError(
                f"the {what} {short(str(path), 200)} must hold a mapping (or a list of "
                f"mappings), not {found}",
                fix=fix,
            )
    if getattr(args, "sets", None) is not None:
        read_text_file(args.sets, "sets file", "a CSV file: a header row of parameter names")


# -- describe, materialize, compile ----------------------------------------------------------
def describe(args: argparse.Namespace, settings: Settings) -> int:
    pipeline = Pipeline.from_notebook(args.notebook)
    print(dumps(pipeline.to_dict(), indent=2) if args.json else render_pipeline(pipeline))
    return 0


def materialize(args: argparse.Namespace, settings: Settings) -> int:
    from ..materialize import write_step_notebooks

    pipeline = Pipeline.from_notebook(args.notebook)
    written = write_step_notebooks(pipeline, args.output, data_dir=args.data_dir)
    order = [s.name for s in pipeline.toposort()]
    print(f"wrote {len(written)} step notebooks to {args.output} (run order: {' -> '.join(order)})")
    for name in order:
        print(f"  {written[name]}")
    return 0


def compile_(args: argparse.Namespace, settings: Settings) -> int:
    from ..api import compile

    pipeline = Pipeline.from_notebook(args.notebook)
    compiled = compile(
        pipeline,
        args.output,
        image=args.image,
        accelerator=args.accelerator,
        packages=args.package,
        cache=not args.no_cache,
        settings=settings,
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
        print(f"submit it: kfnb run {_q(args.notebook)} --backend kfp --host URL")
        return 0
    return _run_compiled_here(compiled, pipeline, args)


def _run_compiled_here(compiled: Any, pipeline: Pipeline, args: argparse.Namespace) -> int:
    from ..backends.kfp.local_run import run_compiled
    from ..params import resolve_params

    params = resolve_params(pipeline, {}, param_pairs(args))
    print("running it with kfp.local ...", flush=True)
    started = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):  # kfp.local's own task logs
        result = run_compiled(compiled, params)
    print(
        f"kfp.local: all {len(pipeline.steps)} steps succeeded in "
        f"{time.monotonic() - started:.1f}s; artifacts in {result.root}"
    )
    for name, value in result.metrics().items():
        print(f"  {name} = {value:g}")
    return 0


# -- run --------------------------------------------------------------------------------------
def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """The backend options the user gave (only those): the flags that spell an option, then
    ``-O KEY=VALUE`` (text; the backend's ``Option.parse`` types it)."""
    options: dict[str, Any] = {}
    for dest, name in OPTION_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            options[name] = value
    if getattr(args, "no_cache", False):
        options["cache"] = False
    for item in getattr(args, "option", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"--option {item!r} is not KEY=VALUE",
                fix="e.g. --option max_parallel=4 (`kfnb backends` lists the options)",
            )
        options[key.strip().replace("-", "_")] = value
    return options


def start_run(args: argparse.Namespace, settings: Settings, *, one_shot: bool) -> PipelineRun:
    """Submit a run of ``args.notebook`` through ``kfnb.run`` (not waited for). ``one_shot``:
    this process ends with the run, so a backend that keeps kernels warm between runs
    (an option ``pool_size``) keeps none unless asked to."""
    from ..api import run
    from ..params import load_params_file

    pairs = param_pairs(args)
    options = backend_options(args)
    keeps_kernels = "pool_size" in {o.name for o in get_backend(args.backend).options()}
    if one_shot and keeps_kernels and "pool_size" not in options:
        options["pool_size"] = 0
    values = load_params_file(args.params_file) if args.params_file else None
    resume = getattr(args, "resume", None)
    if args.notebook is None and resume is None:
        raise UsageError("kfnb run takes a NOTEBOOK, or --resume RUN", fix="name the notebook")
    return run(
        args.notebook,
        values,
        resume=resume,
        backend=args.backend,
        wait=False,
        store=open_store(settings),
        settings=settings,
        param_strings=pairs,
        **options,
    )


def run_(args: argparse.Namespace, settings: Settings) -> int:
    from .. import progress
    from ..api import NothingToResume

    if args.detach and not get_backend(args.backend).detached:
        raise KfnbError(
            f"--detach: a {args.backend!r} run is driven by this process and would end with it",
            fix="drop --detach to follow it here, or pick a backend whose runs go on elsewhere "
            "(`kfnb backends` says which)",
        )
    try:
        result = start_run(args, settings, one_shot=True)
    except NothingToResume as err:  # not a failure: every step's results are there
        print(f"kfnb: {err}", file=sys.stderr)
        return 0
    out = sys.stderr if args.json else sys.stdout
    if args.resume:
        print(f"resuming run {args.resume} as run {result.id}", file=out, flush=True)
    record = result.record
    if record.remote:
        where = f"{record.remote.get('host')}: {record.remote.get('url')}"
        print(f"submitted run {record.id} to {where}", file=out, flush=True)
    if args.detach:
        print(f"follow it with: kfnb show {_q(record.id)}", file=out)
        if args.json:
            print(dumps(record.to_dict(), indent=2))
        return 0
    try:
        record = progress.follow(
            lambda: result.record,
            out=out,
            sleep=lambda seconds: result.wait(timeout=seconds),
            ended=lambda: result.done,
        )
    except KeyboardInterrupt:
        print("\nkfnb: cancelling...", file=sys.stderr)
        result.cancel()
        result.wait()
        record = result.record
    if args.json:
        print(dumps(record.to_dict(), indent=2))
    else:
        print("\n".join(progress.summary(record)))
    return 0 if record.status == "SUCCEEDED" else 1


def train_how(args: argparse.Namespace) -> dict[str, Any]:
    """``kfnb.training.submit``'s keywords from the shared training options."""
    return {
        "procs_per_node": args.procs,
        "gpus_per_node": args.gpus,
        "nodes": args.nodes,
        "backend": args.backend,
        "image": args.image,
        "namespace": args.namespace,
        "cpu": args.cpu,
        "memory": args.memory,
        "dry_run": args.dry_run,
    }


def train_(args: argparse.Namespace, settings: Settings) -> int:
    from .. import progress
    from ..training import train, train_step

    if args.step is not None or args.target.suffix == ".ipynb":
        if args.step is None:
            raise KfnbError(
                f"{args.target} is a notebook: which of its steps should the ranks run?",
                fix="pass --step NAME (kfnb describe NOTEBOOK lists the steps)",
            )
        if args.argv:
            raise KfnbError(
                "arguments after -- are for scripts; a step takes pipeline parameters",
                fix="pass them as -p NAME VALUE",
            )
        job = train_step(args.target, args.step, param_strings=param_pairs(args), **train_how(args))
    else:
        if args.param:
            raise KfnbError(
                "-p sets a notebook step's pipeline parameters; a script takes its arguments "
                "after --",
                fix=f"kfnb train {_q(args.target)} -- --NAME VALUE",
            )
        job = train(args.target, argv=list(args.argv), **train_how(args))
    if args.dry_run:
        import yaml

        print(yaml.safe_dump(job, sort_keys=False), end="")
        return 0
    out = sys.stderr if args.json else sys.stdout
    print(f"started training job {job.id} ({args.procs} process(es), {args.gpus} GPU(s))", file=out)
    if args.detach:
        print(f"follow it with: kfnb logs -f {_q(job.id)}", file=out)
    else:
        job.follow(out)
    record = job.record
    if args.json:
        print(dumps(record.to_dict(), indent=2))
    else:
        print("\n".join(progress.summary(record)), file=out)
    return 0 if args.detach or record.status == "SUCCEEDED" else 1


def tune_(args: argparse.Namespace, settings: Settings) -> int:
    from ..tuning import tune

    if (args.notebook is None) == (args.resume is None):
        raise UsageError(
            "kfnb tune takes a NOTEBOOK, or --resume STUDY",
            fix="kfnb tune churn.ipynb --space space.yaml --objective accuracy --maximize",
        )
    pairs = param_pairs(args)
    check_input_files(args)
    options = backend_options(args)
    fixed = params_file(args, args.notebook)
    study = tune(
        args.notebook,
        args.space,
        objective=args.objective,
        direction=args.direction,
        trials=args.trials,
        parallel=args.parallel,
        algorithm=args.algorithm,
        prune=args.prune,
        seed=args.seed,
        max_failed=args.max_failed,
        params=fixed,
        param_strings=pairs,
        backend=args.backend,
        options=options,
        dry_run=args.dry_run,
        resume=args.resume,
        store=open_store(settings) if not args.dry_run else None,
        settings=settings,
    )
    if args.dry_run:
        import yaml

        print(yaml.safe_dump(study, sort_keys=False), end="")
        return 0
    out = sys.stderr if args.json else sys.stdout
    what = "resumed" if args.resume else "started"
    print(f"{what} study {study.id} ({study.record.backend})", file=out, flush=True)
    try:
        follow_study(study, out)
    except KeyboardInterrupt:
        print(
            f"\nkfnb: stopping the study (resume it with `kfnb tune --resume {_q(study.id)}`)...",
            file=sys.stderr,
        )
        study.stop()
        study.wait()
    view = study.view()
    if args.json:
        print(dumps(view, indent=2))
    else:
        print("\n".join(study_table(view)), file=out)
    return 0 if view["status"] == "SUCCEEDED" else 1


def follow_study(study: Any, out: Any) -> None:
    """Print a line per trial as it ends, with the best so far, until the study ends."""
    seen: set[str] = set()
    while True:
        ended = study.done
        study.refresh()
        view = study.view()
        objective = view["study"].get("objective")
        for row in view["trials"]:
            if row["id"] in seen or row["status"] in ("PENDING", "RUNNING"):
                continue
            seen.add(row["id"])
            print(trial_line(row, objective, view["best"]), file=out, flush=True)
        if ended:
            return
        study.wait(timeout=0.5)


def batch_(args: argparse.Namespace, settings: Settings) -> int:
    from ..batching.sweep import batch

    if (args.notebook is None) == (args.resume is None):
        raise UsageError(
            "kfnb batch takes a NOTEBOOK (with --grid or --sets), or --resume BATCH",
            fix="kfnb batch train.ipynb --grid sweep.yaml",
        )
    if args.notebook is not None and (args.grid is None) == (args.sets is None):
        raise UsageError(
            "kfnb batch takes --grid FILE or --sets FILE", fix="kfnb batch nb.ipynb --sets sets.csv"
        )
    pairs = param_pairs(args)
    check_input_files(args)
    options = backend_options(args)
    found = batch(
        args.notebook,
        grid=args.grid,
        sets=args.sets,
        param_strings=pairs,
        max_parallel=args.sets_parallel,
        retry_failed=args.retry_failed,
        options=options,
        resume=args.resume,
        store=open_store(settings),
        settings=settings,
    )
    out = sys.stderr if args.json else sys.stdout
    what = "resumed" if args.resume else "started"
    print(f"{what} batch {found.id}: {len(found.sets)} sets", file=out, flush=True)
    try:
        follow_batch(found, out)
    except KeyboardInterrupt:
        print(
            f"\nkfnb: stopping the batch (resume it with `kfnb batch --resume {_q(found.id)}`)...",
            file=sys.stderr,
        )
        found.cancel()
        found.wait()
    view = found.view()
    if args.output is not None:
        found.save(args.output)
    if args.json:
        print(dumps(store_tree_view(found.store, view), indent=2))
    else:
        print("\n".join(batch_table(view)), file=out)
    return 0 if view["status"] == "SUCCEEDED" else 1


def store_tree_view(store: Store, view: dict[str, Any]) -> dict[str, Any]:
    """The batch view with its record (``--json``): the sets carry their runs' parameters,
    statuses and metrics."""
    return {**store.get_run(view["id"]).to_dict(), **view}


def follow_batch(found: Any, out: Any) -> None:
    """A progress bar on a terminal, else a line per finished set, until the batch ends."""
    from ..batching.text import progress_bar, set_line

    live = out.isatty()
    seen: set[int] = set()
    while True:
        ended = found.done
        view = found.view()
        if live:
            out.write("\r\x1b[2K" + progress_bar(view))
            out.flush()
        else:
            for row in view["sets"]:
                if row["set"] in seen or row["status"] in ("PENDING", "RUNNING"):
                    continue
                seen.add(row["set"])
                print(set_line(row), file=out, flush=True)
        if ended:
            if live:
                out.write("\n")
            return
        found.wait(timeout=0.5)


# -- runs, show, logs, cancel -------------------------------------------------------------------
def _refresh(record: Run, store: Store, settings: Settings) -> Run:
    """Bring a remote run that is still going on up to date (a warning if its backend cannot
    be asked); return its record."""
    if record.remote is None or record.done:
        return record
    try:
        attach(store, record.id, settings).refresh()
    except KfnbError as err:
        print(f"kfnb: warning: run {record.id} shows its last known state: {err}", file=sys.stderr)
    return store.get_run(record.id)


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in RUN_KINDS:
        raise UsageError(
            f"unknown run kind {kind!r}",
            fix=f"{nearest(kind, list(RUN_KINDS))}kinds are: {', '.join(RUN_KINDS)}",
        )


def runs(args: argparse.Namespace, settings: Settings) -> int:
    _check_kind(args.kind)
    store = open_store(settings)
    notebook = getattr(args, "notebook", None)  # the %kfnb magic lists its notebook's runs
    filters = {"kind": args.kind, "notebook": notebook and notebook.resolve()}
    listed = store.list_runs(limit=args.limit, roots_only=not args.all, **filters)
    records = [_refresh(r, store, settings) for r in listed]
    counts = {r.id: store.count_runs(parent_id=r.id) for r in records}
    from ..retention import disk_usage

    sizes = disk_usage(records)
    if args.json:
        print(
            dumps(
                [
                    {**r.to_dict(), "child_count": counts[r.id], "disk_bytes": sizes[r.id]}
                    for r in records
                ],
                indent=2,
            )
        )
    elif records:
        print("\n".join(runs_table(records, counts, sizes)))
    elif notebook:
        print(f"no runs of {notebook} yet")
    else:
        what = f"{args.kind} runs" if args.kind else "runs"
        hint = "" if args.all else " (--all includes runs under others)"
        print(f"no {what} yet{hint}: start one with `kfnb run NOTEBOOK`")
    return 0


def _rows(tree: RunTree, depth: int = 0) -> list[tuple[int, Run]]:
    """(depth, run) of ``tree``, depth first, oldest child first."""
    rows = [(depth, tree.run)]
    for child in tree.children:
        rows += _rows(child, depth + 1)
    return rows


def show(args: argparse.Namespace, settings: Settings) -> int:
    from .. import progress

    store = open_store(settings)
    record = _refresh(store.get_run(args.run), store, settings)
    tree = store.tree(record.id)
    if args.json:
        print(dumps(tree.to_dict(), indent=2))
        return 0
    lines = progress.render(record)
    if record.remote and record.remote.get("url"):
        lines.append(f"  on {record.remote.get('host')}: {record.remote['url']}")
    if record.params:
        lines.append("  params: " + ", ".join(f"{k}={short(v)}" for k, v in record.params.items()))
    if record.kind != "pipeline" or record.parent_id:
        parent = f", under run {record.parent_id}" if record.parent_id else ""
        lines.append(f"  kind: {record.kind}{parent}")
    sections = [run_tree(_rows(tree)), run_spec(record)]
    if record.kind == "tune":
        from ..tuning import study_view

        sections = [study_table(study_view(store, record.id)), run_spec(record)]
    if record.kind == "batch":
        from ..batching.view import batch_view

        sections = [batch_table(batch_view(store, record.id)), run_tree(_rows(tree))]
    for section in sections:
        lines += ["", *section] if section else []
    lines += ["", *progress.summary(record)[1:]]
    print("\n".join(lines))
    return 0


def logs(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings)
    view = RunView(store, store.resolve_id(args.run))
    record = view.record
    names = [record.step(args.step).name] if args.step else [s.name for s in record.steps]
    offsets = dict.fromkeys(names, 0)
    ended: set[str] = set()
    while True:
        run_ended = view.done
        for name in names:
            if name not in ended and _print_new_log(view, name, offsets, header=not args.step):
                ended.add(name)
        if not args.follow or len(ended) == len(names) or (run_ended and not args.step):
            return 0
        time.sleep(0.3)


def _print_new_log(view: RunView, step: str, offsets: dict[str, int], *, header: bool) -> bool:
    """Print what ``step`` logged since ``offsets[step]``; whether its log is complete."""
    while True:
        page = view.read_log(step, offsets[step])
        if page.text:
            if header and page.start == 0:
                print(f"==> {step} <==", flush=True)
            sys.stdout.write(page.text)
            sys.stdout.flush()
        offsets[step] = page.offset
        if page.done or not page.text:
            return page.done


def cancel(args: argparse.Namespace, settings: Settings) -> int:
    from ..tracking import TERMINAL_RUN

    store = open_store(settings)
    record = store.get_run(args.run)
    if record.status in TERMINAL_RUN:
        print(f"run {record.id} already ended: {record.status}")
        return 0
    handle = attach(store, record.id, settings)
    handle.cancel()
    handle.wait(timeout=60)
    record = store.get_run(record.id)
    print(f"run {record.id}: {record.status}")
    return 0 if record.status == "CANCELED" else 1


def backends(args: argparse.Namespace, settings: Settings) -> int:
    if args.json:
        print(dumps(describe_backends(settings), indent=2))
    else:
        found = [(entry, get_backend(entry.name).options()) for entry in availability(settings)]
        print("\n".join(render_backends(found)))
    return 0


def gc(args: argparse.Namespace, settings: Settings) -> int:
    from .. import retention
    from .gc import report_lines

    policy = retention.Policy.of(
        keep_last=args.keep_last, older_than=args.older_than, status=args.status, kind=args.kind
    )
    report = retention.collect(open_store(settings), policy, dry_run=args.dry_run)
    print(dumps(report.to_dict(), indent=2) if args.json else "\n".join(report_lines(report)))
    return 0


COMMANDS: dict[str, Command] = {
    "describe": describe,
    "materialize": materialize,
    "compile": compile_,
    "run": run_,
    "train": train_,
    "tune": tune_,
    "batch": batch_,
    "runs": runs,
    "show": show,
    "logs": logs,
    "cancel": cancel,
    "backends": backends,
    "gc": gc,
}
