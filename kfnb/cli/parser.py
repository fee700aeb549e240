"""The command line's arguments: ``build_parser()`` for ``kfnb``, ``build_parser(magic=True)``
for the ``%kfnb`` line magic.

Both surfaces share these definitions; the magic's variant takes NOTEBOOK optionally (the
kernel's own notebook), has ``launch`` and no ``materialize`` or ``gc``, ``run
--json/--detach`` (a magic's run never blocks), and raises ``UsageError`` on a bad command
line instead of exiting. Backend options are generic: the flags below are only spellings of
option names, and
``-O/--option KEY=VALUE`` reaches any option of any backend (the backend types the value).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from ..errors import KfnbError
from ..tracking.models import RUN_KINDS


def bounded(low: int, high: int, what: str) -> Any:
    """An argparse ``type``: a whole number from ``low`` to ``high`` (a clear error otherwise:
    ``--gpus 99999999999`` is a typo, not a request)."""

    def parse(text: str) -> int:
        if len(text.strip()) > 20:
            raise argparse.ArgumentTypeError(f"{text[:20]!r}... is not a number {low} to {high}")
        value = int(text)  # a ValueError: argparse says "invalid int value: 'many'"
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} {what}: give {low} to {high}")
        return value

    parse.__name__ = "int"
    return parse


def image_ref(text: str) -> str:
    """An argparse ``type``: a well-formed container image reference."""
    from ..notebook.images import image_problem, short_ref

    problem = image_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(
            f"{short_ref(text)}: {problem} (write REGISTRY/NAME:TAG, e.g. python:3.11)"
        )
    return text


def quantity(resource: str) -> Any:
    """An argparse ``type``: a Kubernetes quantity of ``resource`` (cpu, memory) within the
    bounds a step's ``limit:`` tag has (one check: ``notebook.tags.parse_limit``)."""

    def parse(text: str) -> str:
        from ..notebook.tags import TagError, parse_limit

        try:
            return parse_limit(resource, text, f"--{resource} {text[:40]}")[1]
        except TagError as err:
            raise argparse.ArgumentTypeError(f"{err.message} ({err.fix})") from None

    parse.__name__ = "quantity"
    return parse


class UsageError(KfnbError):
    """A bad command line (argparse would have exited): the magic prints it as one line."""


class _MagicParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, fix=f"see `{self.prog} --help`")


def build_parser(prog: str | None = None, *, magic: bool = False) -> argparse.ArgumentParser:
    """The ``kfnb`` argument parser (``magic``: the ``%kfnb`` variant, prog ``%kfnb``)."""
    parser_class = _MagicParser if magic else argparse.ArgumentParser
    parser = parser_class(
        prog=prog or ("%kfnb" if magic else "kfnb"),
        description="Run tagged Jupyter notebooks as pipelines, locally or on Kubeflow.",
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
    if not magic:
        _add_materialize(sub)
    _add_compile(sub, notebook)
    _add_run(sub, notebook, magic)
    if not magic:
        _add_train(sub)
        _add_tune(sub)
        _add_batch(sub)
    _add_runs(sub)
    _add_run_commands(sub)
    if not magic:
        _add_gc(sub)
    backends = sub.add_parser("backends", help="where runs can go, and each backend's options")
    backends.add_argument("--json", action="store_true")
    if magic:
        launch = sub.add_parser("launch", help="show a form to set parameters and start runs")
        launch.add_argument("notebook", **notebook)
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


def _add_params(parser: Any) -> None:
    parser.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter value (repeatable)",
    )


def _add_compile(sub: Any, notebook: dict[str, Any]) -> None:
    comp = sub.add_parser(
        "compile", help="compile a notebook to a Kubeflow Pipelines v2 pipeline (IR YAML)"
    )
    comp.add_argument("notebook", **notebook)
    comp.add_argument("-o", "--output", type=Path, required=True, help="the YAML file to write")
    comp.add_argument(
        "--image",
        type=image_ref,
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
    _add_params(comp)


#: Flags that spell a backend option (dest -> option name); given ones reach the backend as is.
OPTION_FLAGS = {
    "max_parallel": "max_parallel",
    "preload": "preload",
    "host": "host",
    "namespace": "namespace",
    "experiment": "experiment",
    "image": "image",
}


def _add_run(sub: Any, notebook: dict[str, Any], magic: bool) -> None:
    run = sub.add_parser(
        "run",
        help="run a notebook as a pipeline"
        + (" (the saved file; returns at once)" if magic else ""),
        epilog="Backend options: `kfnb backends` lists each backend's options; a flag or "
        "--option the chosen backend does not have is an error naming its options.",
    )
    run.add_argument(
        "notebook", **{**notebook, "nargs": "?", "default": None}
    )  # optional with --resume (the resumed run's)
    _add_params(run)
    run.add_argument("-f", "--params-file", type=Path, help="YAML file of parameter values")
    run.add_argument(
        "--resume",
        metavar="RUN",
        help="a new run of a failed or cancelled RUN (its notebook as it is now, its "
        "parameters): the steps that succeeded are reused, cache or not; the others run",
    )
    run.add_argument("--backend", default="local", help="where to run (default: local)")
    opts = run.add_argument_group("backend options (given ones only; see `kfnb backends`)")
    opts.add_argument(
        "-O",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any option of the backend, e.g. -O max_parallel=4 (repeatable)",
    )
    opts.add_argument(
        "--max-parallel",
        type=bounded(1, 4096, "steps at once"),
        help="option max_parallel: most steps at once",
    )
    opts.add_argument(
        "--no-cache",
        action="store_true",
        help="option cache=false: run every step, even those an earlier run holds results of",
    )
    opts.add_argument(
        "--preload",
        action="append",
        metavar="MODULE",
        help="option preload: import MODULE once for every step's kernel (repeatable)",
    )
    opts.add_argument("--host", help="option host: the KFP API URL")
    opts.add_argument("--namespace", help="option namespace: the Kubeflow profile namespace")
    opts.add_argument("--experiment", help="option experiment: the experiment to run in")
    opts.add_argument(
        "--image", type=image_ref, help="option image: base image of steps that name none"
    )
    if not magic:
        run.add_argument(
            "--detach",
            action="store_true",
            help="submit and return without following (a run that lives elsewhere); "
            "follow later with `kfnb show RUN`",
        )
        run.add_argument("--json", action="store_true", help="print the final run record as JSON")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """The options of a training job, shared by `kfnb train` and the `%%train` cell magic."""
    parser.add_argument(
        "--procs",
        type=bounded(1, 1024, "processes per node"),
        default=1,
        help="processes (ranks) per node",
    )
    parser.add_argument(
        "--gpus",
        type=bounded(0, 1024, "GPUs per node"),
        default=0,
        help="GPUs per node, leased machine-wide (default: 0)",
    )
    parser.add_argument(
        "--nodes", type=bounded(1, 4096, "nodes"), default=1, help="nodes (cluster backends)"
    )
    parser.add_argument(
        "--backend",
        default="local",
        help="where to train: local (default), trainjob (Kubeflow Trainer), pytorchjob",
    )
    cluster = parser.add_argument_group("cluster backends (trainjob, pytorchjob)")
    cluster.add_argument(
        "--image", type=image_ref, help="the image each node runs (Python, torch and kfnb)"
    )
    cluster.add_argument("--namespace", help="default: the kubeconfig context's, or the pod's")
    cluster.add_argument("--cpu", type=quantity("cpu"), help="CPUs per node, e.g. 8")
    cluster.add_argument("--memory", type=quantity("memory"), help="memory per node, e.g. 32Gi")
    cluster.add_argument(
        "--dry-run", action="store_true", help="print the manifest instead of submitting it"
    )


def train_cell_parser() -> argparse.ArgumentParser:
    """The ``%%train`` cell magic's line (the cell is the program)."""
    parser = _MagicParser(
        prog="%%train", description="Train this cell's code as torchrun ranks on leased GPUs."
    )
    add_train_options(parser)
    parser.add_argument(
        "--wait", action="store_true", help="print the ranks' merged log until the job ends"
    )
    return parser


def _add_train(sub: Any) -> None:
    train = sub.add_parser(
        "train",
        help="train a script or a pipeline step as torchrun ranks (follows their merged log)",
        epilog="Arguments after -- go to the script: kfnb train fit.py --procs 2 -- --lr 0.1. "
        "A step: kfnb train nb.ipynb --step train --procs 2 -p lr 0.1 (the steps it needs "
        "run first, as a pipeline run here; the step cache keeps that quick).",
    )
    train.add_argument(
        "target", type=Path, help="the Python script each rank runs, or a notebook (--step)"
    )
    train.add_argument("--step", help="the notebook's step each rank runs")
    _add_params(train)
    add_train_options(train)
    train.add_argument(
        "--detach", action="store_true", help="start it and return; it goes on without this"
    )
    train.add_argument("--json", action="store_true", help="print the final run record as JSON")
    train.add_argument("argv", nargs="*", help=argparse.SUPPRESS)


def _add_tune(sub: Any) -> None:
    tune = sub.add_parser(
        "tune",
        help="tune a notebook's parameters: trials run as pipeline runs (Optuna here, or Katib)",
        epilog="space.yaml is Katib's parameters list ({name, parameterType, feasibleSpace}) or "
        "the short form NAME: {float: [lo, hi], log: true} | {int: [lo, hi], step: 1} | "
        "{choice: [a, b]}. Without --space (and the rest), the notebook's katib_metadata is used.",
    )
    tune.add_argument(
        "notebook", type=Path, nargs="?", help="the notebook to tune (not with --resume)"
    )
    tune.add_argument("--space", type=Path, metavar="FILE", help="the search space (YAML)")
    tune.add_argument("--objective", help="the metric to optimise")
    direction = tune.add_mutually_exclusive_group()
    direction.add_argument("--maximize", dest="direction", action="store_const", const="maximize")
    direction.add_argument("--minimize", dest="direction", action="store_const", const="minimize")
    tune.add_argument(
        "--trials",
        type=bounded(1, 1_000_000, "trials"),
        help="trials that end the study (default 20)",
    )
    tune.add_argument(
        "--parallel", type=bounded(1, 4096, "trials at once"), help="trials at once (default 1)"
    )
    tune.add_argument("--algorithm", help="tpe (default), random, grid, cmaes, qmc")
    tune.add_argument(
        "--prune", choices=["median", "none"], help="early stopping of unpromising trials"
    )
    tune.add_argument("--seed", type=int, help="seed of the search algorithm")
    tune.add_argument(
        "--max-failed",
        type=bounded(0, 1_000_000, "failed trials"),
        help="stop the study after this many failures",
    )
    _add_params(tune)
    tune.add_argument("-f", "--params-file", type=Path, help="YAML file of fixed parameters")
    tune.add_argument("--backend", default="local", help="local (default: Optuna here) or katib")
    tune.add_argument(
        "-O",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the backend (local: the pipeline backend's, e.g. max_parallel=4; "
        "katib: namespace, image...)",
    )
    tune.add_argument("--namespace", help="katib: the namespace of the Experiment")
    tune.add_argument(
        "--image", type=image_ref, help="katib: the image trials run (Python and kfnb)"
    )
    tune.add_argument(
        "--dry-run", action="store_true", help="katib: print the Experiment instead of creating it"
    )
    tune.add_argument("--resume", metavar="STUDY", help="go on with a stopped or failed study")
    tune.add_argument(
        "--json", action="store_true", help="print the study (best, trials) as JSON at the end"
    )


def _add_batch(sub: Any) -> None:
    batch = sub.add_parser(
        "batch",
        help="run a notebook once per parameter set (a sweep), sets sharing the step cache",
        epilog="sweep.yaml maps parameter names to lists of values (their product is swept); "
        "a list of such mappings is their union. sets.csv has a header row of parameter names "
        "and one set per row, typed by the notebook's parameters cell.",
    )
    batch.add_argument(
        "notebook", type=Path, nargs="?", help="the notebook to sweep (not with --resume)"
    )
    what = batch.add_mutually_exclusive_group()
    what.add_argument("--grid", type=Path, metavar="FILE", help="the grid to sweep (YAML)")
    what.add_argument("--sets", type=Path, metavar="FILE", help="the parameter sets (CSV)")
    _add_params(batch)
    batch.add_argument(
        "--max-parallel",
        dest="sets_parallel",
        type=bounded(1, 4096, "sets at once"),
        metavar="N",
        help="sets at once",
    )
    batch.add_argument(
        "--retry-failed",
        action="store_true",
        help="run failed sets again (not only those that failed for a dead kernel or a timeout)",
    )
    batch.add_argument(
        "-O",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the local backend (e.g. pool_size=4)",
    )
    batch.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write the results (.csv, .json, .md)"
    )
    batch.add_argument("--resume", metavar="BATCH", help="run again the sets that did not succeed")
    batch.add_argument(
        "--json", action="store_true", help="print the batch with its sets as JSON at the end"
    )


def _add_runs(sub: Any) -> None:
    runs = sub.add_parser("runs", help="list recent runs (top-level ones unless --all)")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--kind", help=f"only runs of this kind ({', '.join(RUN_KINDS)})")
    runs.add_argument(
        "--all", action="store_true", help="also the runs under others (a study's trials...)"
    )
    runs.add_argument("--json", action="store_true")


def _add_gc(sub: Any) -> None:
    gc = sub.add_parser(
        "gc",
        help="remove old runs: their records and artifacts folders (--dry-run: only list them)",
        epilog="Criteria narrow what goes, and apply to top-level runs: the runs under one "
        "(trials, sets) go with it. Runs that have not ended, and runs whose results a kept "
        "run's cached steps reused, are always kept.",
    )
    gc.add_argument(
        "--keep-last", type=int, metavar="N", help="keep the N newest (matching) top-level runs"
    )
    gc.add_argument(
        "--older-than", metavar="AGE", help="only runs that ended over AGE ago: 30d, 12h, 90m"
    )
    gc.add_argument("--status", metavar="S[,S]", help="only runs that ended so: failed,canceled...")
    gc.add_argument(
        "--kind", metavar="K[,K]", help=f"only runs of these kinds ({', '.join(RUN_KINDS)})"
    )
    gc.add_argument("--dry-run", action="store_true", help="list what would go; remove nothing")
    gc.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_run_commands(sub: Any) -> None:
    show = sub.add_parser("show", help="show one run, its children and the pipeline it ran")
    show.add_argument("run")
    show.add_argument("--json", action="store_true", help="the record, its spec and children")

    logs = sub.add_parser("logs", help="print the logs of a run's steps")
    logs.add_argument("run")
    logs.add_argument("step", nargs="?")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until it ends")

    cancel = sub.add_parser("cancel", help="stop a running run")
    cancel.add_argument("run")
