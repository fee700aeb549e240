"""Hyperparameter tuning of a notebook, side by side: kfnb local vs an Optuna + papermill loop.

    python benchmarks/tune_bench.py [--repeat 3] [--trials 20] [--parallel 4] [--json FILE]

(from the checkout, with its virtualenv: ``PYTHONPATH=. .venv/bin/python benchmarks/tune_bench.py``)

The workload (written to a temporary folder) is one 3-step notebook:

- a parameters cell, tagged both ``pipeline-parameters`` (kfnb) and ``parameters`` (papermill
  injects the trial's values after it): ``lr = 0.1``, ``depth = 3``;
- ``load``: ``time.sleep(2)`` and makes the data; it reads no tuned parameter;
- ``fit``: reads ``lr``, ``depth`` and the data, computes a deterministic loss (cheap);
- ``evaluate``: turns it into ``val_loss``, which the ``pipeline-metrics`` cell prints.

Each contender runs ``--trials`` trials of TPE (``optuna.samplers.TPESampler(seed=--seed)``)
over the same space (``lr``: log-uniform 1e-3..1, ``depth``: 1..8), minimising ``val_loss``;
both draw parameters with the same ``trial.suggest_*`` calls (``kfnb.Float``/``kfnb.Int``):

- ``kfnb``: ``kfnb.tune(notebook, ..., parallel=--parallel).wait()`` in this process, the local
  backend with its default settings, a fresh ``KFNB_HOME`` each time (so the step cache starts
  empty: ``load`` runs in the first trial, the others take it from the cache) and no kernel
  pool left over from the previous study (``shutdown_shared_pools`` before each);
- ``optuna + papermill``: ``optuna.create_study(...).optimize(objective, n_trials=--trials)``,
  the objective calling ``papermill.execute_notebook(notebook, out, parameters=trial's,
  kernel_name="python3")`` (a fresh kernel per trial, every cell run) and reading ``val_loss``
  back from the executed notebook's pipeline-metrics cell output;
- ``optuna + papermill, n_jobs=N``: the same loop with ``optimize(..., n_jobs=--parallel)``.

All three are timed (wall clock, from the call to the study's end) ``--repeat`` times in this
one process run, interleaved (repeat 1 of each, then repeat 2...) so drift hits them alike,
after one uncounted papermill execution (imports, page cache). The table: median (min-max)
seconds, the contender's median over kfnb's (> 1: kfnb is faster), trials completed per
repeat, the best value of the last repeat, and "CPU busy": the share of the whole machine's
CPU time (all cores, ``/proc/stat``) that was busy while the contender ran (median; it counts
other processes too, so a busy machine shows here). Then whether the issue's targets are met
(at least 5x faster than the sequential loop, at least 2x faster than the ``n_jobs`` loop):
printed, never asserted.

Also printed, from kfnb's run store (measured, not estimated): where a kfnb study's time goes
-- when the first trial's run started and when its ``load`` step ended (the other trials wait
for it: it feeds them from the cache), a trial run's median time, the step counts (``load``
SUCCEEDED once, CACHED in the other trials), and per executed step its start-to-end time next
to its cells' own time (papermill's per-cell durations in the step's executed notebook, kfnb's
hand-over cells included): the difference is per-step overhead.

Progress goes to stderr, with the papermill kernels' own warnings; the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.local_bench import KERNEL, fmt, machine  # noqa: E402

OBJECTIVE = "val_loss"
SLEEP_S = 2


# -- the workload -------------------------------------------------------------------------------
def write_notebook(path: Path) -> Path:
    """The 3-step notebook both kfnb and papermill run (see the module's doc)."""
    cells = [
        (["pipeline-parameters", "parameters"], "lr = 0.1\ndepth = 3"),
        (
            ["step:load"],
            f"import time\ntime.sleep({SLEEP_S})\ndata = [i / 1000 for i in range(1000)]",
        ),
        (
            ["step:fit", "prev:load"],
            "import math\n"
            "scale = sum(data) / len(data)\n"
            "loss = (math.log10(lr) + 1.5) ** 2 + (depth - 5) ** 2 / 10 + scale",
        ),
        (["step:evaluate", "prev:fit"], "val_loss = round(loss, 9)"),
        (["pipeline-metrics"], f"print({OBJECTIVE})"),
    ]
    nb = new_notebook(
        cells=[new_code_cell(src, metadata={"tags": tags}) for tags, src in cells],
        metadata=KERNEL,
    )
    nbformat.write(nb, path)
    return path


def space() -> dict[str, Any]:
    import kfnb

    return {"lr": kfnb.Float(1e-3, 1.0, log=True), "depth": kfnb.Int(1, 8)}


# -- contenders ---------------------------------------------------------------------------------
Result = dict[str, Any]  # seconds, trials (completed), best (value)


class Bench:
    def __init__(self, folder: Path, nb: Path, trials: int, parallel: int, seed: int) -> None:
        self.folder = folder
        self.nb = nb
        self.trials = trials
        self.parallel = parallel
        self.seed = seed
        self.space = space()
        self.cwd = Path.cwd()
        self.counter = 0  # names each kfnb home and papermill output folder apart
        self.breakdown: list[dict[str, Any]] = []  # kfnb's, one per timed study

    def kfnb(self) -> Result:
        import kfnb
        from kfnb.kernels import shutdown_shared_pools
        from kfnb.settings import Settings

        shutdown_shared_pools()  # no kernels left ready by the previous study
        self.counter += 1
        home = self.folder / f"kfnb-home-{self.counter}"
        os.environ["KFNB_HOME"] = str(home)  # kernels and steps see the same home
        settings = Settings.load(home=home)
        wall0 = time.time()
        t0 = time.perf_counter()
        study = kfnb.tune(
            self.nb,
            space=self.space,
            objective=OBJECTIVE,
            direction="minimize",
            trials=self.trials,
            parallel=self.parallel,
            algorithm="tpe",
            seed=self.seed,
            settings=settings,
            store=settings.store(),
        )
        study.wait()
        took = time.perf_counter() - t0
        view = study.view()
        if view["status"] != "SUCCEEDED":
            raise RuntimeError(f"kfnb study {study.id} ended {view['status']}: {view['error']}")
        self.breakdown.append(_kfnb_breakdown(study, view, t0_wall=wall0))
        done = view["counts"]["SUCCEEDED"]
        return {"seconds": took, "trials": done, "best": view["best"]["value"]}

    def papermill(self, n_jobs: int) -> Result:
        import optuna
        import papermill

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.counter += 1
        out = self.folder / f"papermill-{self.counter}"
        out.mkdir()

        def objective(trial: optuna.Trial) -> float:
            params = {name: dist.suggest(trial, name) for name, dist in self.space.items()}
            executed = out / f"trial-{trial.number}.ipynb"
            papermill.execute_notebook(
                str(self.nb),
                str(executed),
                parameters=params,
                kernel_name="python3",
                progress_bar=False,
            )  # no cwd=: papermill chdir()s the whole process, which n_jobs threads race on
            return read_metric(executed)

        t0 = time.perf_counter()
        study = optuna.create_study(
            direction="minimize", sampler=optuna.samplers.TPESampler(seed=self.seed)
        )
        study.optimize(objective, n_trials=self.trials, n_jobs=n_jobs)
        took = time.perf_counter() - t0
        if Path.cwd() != self.cwd:
            raise RuntimeError(f"the loop left this process in {Path.cwd()}, not {self.cwd}")
        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        shutil.rmtree(out, ignore_errors=True)
        return {"seconds": took, "trials": done, "best": study.best_value}


def read_metric(executed: Path) -> float:
    """``val_loss`` as the executed notebook's pipeline-metrics cell printed it."""
    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        if "pipeline-metrics" in cell.get("metadata", {}).get("tags", []):
            text = "".join(o.get("text", "") for o in cell.get("outputs", []))
            return float(text.strip().splitlines()[-1])
    raise RuntimeError(f"{executed}: no pipeline-metrics cell output")


def _cells_s(executed: str | None) -> float | None:
    """Seconds the cells of an executed notebook ran (papermill records each cell's)."""
    if not executed or not Path(executed).is_file():
        return None
    cells = nbformat.read(executed, as_version=4).cells
    return sum(float((c.metadata.get("papermill") or {}).get("duration") or 0.0) for c in cells)


def _kfnb_breakdown(study: Any, view: dict[str, Any], t0_wall: float) -> dict[str, Any]:
    """Where a kfnb study's time went, from its run store: seconds from the ``tune()`` call to
    the first trial's run starting and to its ``load`` step ending, the trials' runs, and per
    executed step its time from start to end (``wall``) and its cells' own time (``cells``)."""
    store = study.store
    counts: Counter[str] = Counter()
    wall: dict[str, list[float]] = {}
    cells: dict[str, list[float]] = {}
    trial_s: list[float] = []
    first_start: float | None = None
    load_done: float | None = None
    last_end = 0.0
    for row in view["trials"]:
        if not row["run"]:
            continue
        child = store.get_run(row["run"])
        if child.started_at is not None and child.finished_at is not None:
            trial_s.append(child.finished_at - child.started_at)
            first_start = min(first_start or child.started_at, child.started_at)
            last_end = max(last_end, child.finished_at)
        for step in child.steps:
            counts[f"{step.name} {step.status}"] += 1
            if step.status != "SUCCEEDED" or step.started_at is None or not step.finished_at:
                continue
            wall.setdefault(step.name, []).append(step.finished_at - step.started_at)
            ran = _cells_s(step.output_notebook)
            if ran is not None:
                cells.setdefault(step.name, []).append(ran)
            if step.name == "load":
                load_done = step.finished_at
    record = study.record
    med = statistics.median
    return {
        "to_first_trial_s": None if first_start is None else first_start - t0_wall,
        "to_load_done_s": None if load_done is None else load_done - t0_wall,
        "last_trial_to_end_s": (record.finished_at or last_end) - last_end if last_end else None,
        "steps": dict(sorted(counts.items())),
        "step_wall_median_s": {k: med(v) for k, v in wall.items()},
        "step_cells_median_s": {k: med(v) for k, v in cells.items()},
        "trial_run_median_s": med(trial_s) if trial_s else None,
    }


def cpu_busy() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine so far (``/proc/stat``; zeros elsewhere)."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


# -- measuring and printing ---------------------------------------------------------------------
def fmt_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def print_table(rows: dict[str, list[Result]], base: str) -> dict[str, float]:
    """The table (markdown); returns each contender's median over ``base``'s."""
    base_med = statistics.median(r["seconds"] for r in rows[base])
    head = [
        "contender",
        "median s (min-max)",
        "vs kfnb",
        "trials completed",
        "best val_loss",
        "CPU busy",
    ]
    table = [head]
    ratios: dict[str, float] = {}
    for name, results in rows.items():
        secs = [r["seconds"] for r in results]
        ratios[name] = statistics.median(secs) / base_med
        table.append(
            [
                name,
                fmt(secs),
                f"{ratios[name]:.2f}x",
                "/".join(str(r["trials"]) for r in results),
                fmt_value(results[-1]["best"]),
                fmt_pct(statistics.median(r["cpu_busy"] or 0.0 for r in results)),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for i, row in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return ratios


def print_breakdown(breakdown: list[dict[str, Any]]) -> None:
    """kfnb's time, from its run store (medians over the timed studies)."""
    if not breakdown:
        return

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}" if values else "-"

    def key(name: str) -> str:
        return med([b[name] for b in breakdown if b[name] is not None])

    print(
        f"\nkfnb, where a study's time goes (medians over {len(breakdown)} studies, seconds; "
        f"from the tune() call): first trial's run started at {key('to_first_trial_s')}, its "
        f"load step done at {key('to_load_done_s')} (the other trials wait for it); "
        f"a trial's run {key('trial_run_median_s')}; last trial's end to the study's "
        f"{key('last_trial_to_end_s')}"
    )
    counts = breakdown[-1]["steps"].items()
    print("  steps of the last study: " + ", ".join(f"{k} {v}" for k, v in counts))
    names = list(breakdown[-1]["step_wall_median_s"])
    parts = []
    for name in names:
        wall = [b["step_wall_median_s"][name] for b in breakdown if name in b["step_wall_median_s"]]
        ran = [
            b["step_cells_median_s"][name] for b in breakdown if name in b["step_cells_median_s"]
        ]
        parts.append(
            f"{name} {med([w for w in wall if w is not None])} "
            f"(cells {med([c for c in ran if c is not None])})"
        )
    print("  an executed step, start to end (of it its cells' own time): " + ", ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4, help="kfnb parallel, Optuna n_jobs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="kfnb-tune-bench-"))
    saved_home = os.environ.get("KFNB_HOME")
    seq, par = "optuna + papermill", f"optuna + papermill, n_jobs={args.parallel}"
    rows: dict[str, list[Result]] = {"kfnb": [], seq: [], par: []}
    try:
        nb = write_notebook(folder / "tune.ipynb")
        bench = Bench(folder, nb, args.trials, args.parallel, args.seed)
        runners: dict[str, Callable[[], Result]] = {
            "kfnb": bench.kfnb,
            seq: lambda: bench.papermill(1),
            par: lambda: bench.papermill(args.parallel),
        }
        import papermill

        warm = folder / "warm-up.ipynb"  # imports and the page cache, counted for nobody
        papermill.execute_notebook(str(nb), str(warm), kernel_name="python3", progress_bar=False)
        for i in range(args.repeat):
            for name, run in runners.items():
                busy0, total0 = cpu_busy()
                r = run()
                busy1, total1 = cpu_busy()
                r["cpu_busy"] = (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
                rows[name].append(r)
                print(
                    f"  {i + 1}/{args.repeat} {name}: {r['seconds']:.2f} s, "
                    f"{r['trials']} trials, best {fmt_value(r['best'])}, "
                    f"CPU busy {fmt_pct(r['cpu_busy'])}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        from kfnb.kernels import shutdown_shared_pools

        shutdown_shared_pools()
        if saved_home is None:
            os.environ.pop("KFNB_HOME", None)
        else:
            os.environ["KFNB_HOME"] = saved_home
        shutil.rmtree(folder, ignore_errors=True)

    print(
        f"\n{args.trials} trials of TPE (seed {args.seed}), 3-step notebook whose first step "
        f"sleeps {SLEEP_S} s; kfnb parallel={args.parallel}; {args.repeat} runs each, seconds: "
        f"median (min-max); machine: {machine()}"
    )
    ratios = print_table(rows, "kfnb")
    print_breakdown(bench.breakdown)
    targets = {seq: 5.0, par: 2.0}
    print()
    for name, want in targets.items():
        met = "met" if ratios[name] >= want else "NOT met"
        print(f"target: kfnb >= {want:g}x faster than {name}: {ratios[name]:.2f}x, {met}")
    if args.json:
        data = {
            "config": vars(args) | {"json": str(args.json)},
            "results": rows,
            "ratios_vs_kfnb": ratios,
            "kfnb_breakdown": bench.breakdown,
        }
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
