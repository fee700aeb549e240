"""Local pipeline runs, side by side: kfnb cold and warm, a plain papermill loop, Elyra.

    python benchmarks/local_bench.py [--repeat 3] [--peers] [--only L10,F8,D1,C10]

Workloads (notebooks written to a temporary folder):

- L10: 10 trivial steps in a chain, each reading the previous step's value;
- F8: 8 independent steps that each sleep 2 s, then a step joining their values;
- D1: one step makes a 1 GiB float64 array and a 10-million-row DataFrame, the next reads them
  (D0 is the same pair of steps, both importing numpy and pandas, without the hand-over; D1 - D0
  is the cost of passing the data);
- C10: L10 again with the cache warm (an identical earlier run).

Columns, each the median (and min-max) of ``--repeat`` runs after one uncounted warm-up run, all
measured in this one process run:

- kfnb cold: ``kfnb run NOTEBOOK --no-cache`` in a fresh process: nothing started beforehand (for
  C10: ``kfnb run NOTEBOOK`` after one identical run);
- kfnb warm: ``kfnb.run(...)`` in this process with the kernel pool full (``--pool-size``
  kernels ready, as ``kfnb.warm()`` keeps them in a notebook or the Jupyter server);
- papermill: the same step notebooks (``kfnb materialize``) run one after another with
  ``papermill.execute_notebook`` in this process, a fresh kernel each (what a hand-written
  papermill loop does);
- Elyra (``--peers``): Elyra's local runtime, ``elyra-pipeline run`` on a ``.pipeline`` file over
  the same step notebooks, Elyra installed in a separate virtualenv
  (``benchmarks/peers/elyra.py``; the first ``--peers`` run installs it).

Ratios: kfnb/papermill and kfnb/Elyra (< 1 means kfnb is faster).

"D1 hand-over" is the time the D1 steps spend passing the data, read from the executed
notebooks (papermill records each cell's duration): the producer's save-outputs cell plus the
consumer's load-inputs cell. Unlike D1 - D0 it is not drowned by how long the machine takes to
allocate the 1.2 GB both workloads create (page-cache reclaim makes that vary by seconds here).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KFNB = str(Path(sys.executable).with_name("kfnb"))
KERNEL = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}


# -- workloads ----------------------------------------------------------------------------------
def _notebook(path: Path, cells: list[tuple[str, str]]) -> Path:
    nb = new_notebook(
        cells=[new_code_cell(src, metadata={"tags": [tag]}) for tag, src in cells], metadata=KERNEL
    )
    nbformat.write(nb, path)
    return path


def write_workloads(folder: Path) -> dict[str, Path]:
    chain = [("step:s0", "x = 0")] + [(f"step:s{i}", "x = x + 1") for i in range(1, 10)]
    fan = [(f"step:sleep{i}", f"import time\ntime.sleep(2)\nv{i} = {i}") for i in range(8)]
    fan.append(("step:join", "total = " + " + ".join(f"v{i}" for i in range(8))))
    make = (
        "import numpy as np\nimport pandas as pd\n"
        "arr = np.ones(2**27)\n"  # 1 GiB of float64
        "df = pd.DataFrame({'i': np.arange(10_000_000), 'x': np.ones(10_000_000)})\n"
    )
    return {
        "L10": _notebook(folder / "l10.ipynb", chain),
        "F8": _notebook(folder / "f8.ipynb", fan),
        "D1": _notebook(
            folder / "d1.ipynb",
            [("step:make", make), ("step:use", "n = float(arr[::4096].sum()) + len(df)")],
        ),
        "D0": _notebook(
            folder / "d0.ipynb",
            [
                ("step:make", make + "n0 = len(arr) + len(df)\ndel arr, df\n"),
                ("step:use", "import numpy as np\nimport pandas as pd\nn = n0"),
            ],
        ),
    }


# -- runners ------------------------------------------------------------------------------------
class Bench:
    def __init__(self, folder: Path, pool_size: int) -> None:
        self.folder = folder
        self.home = folder / "kfnb-home"
        self.pool_size = pool_size
        os.environ["KFNB_HOME"] = str(self.home)
        self._materialized: dict[Path, Path] = {}
        self.handover: dict[str, list[float]] = {}

    def _record_handover(self, column: str, executed: list[Path]) -> None:
        took = 0.0
        for path in executed:
            for cell in nbformat.read(path, as_version=4).cells:
                if cell.get("metadata", {}).get("kfnb", {}).get("role") in ("inputs", "outputs"):
                    took += float(cell.metadata.get("papermill", {}).get("duration") or 0.0)
        self.handover.setdefault(column, []).append(took)

    def _cleanup_runs(self) -> None:
        """Drop earlier runs' data (D1 writes 1.2 GB a run) but keep the run store."""
        runs = self.home / "runs"
        if runs.is_dir():
            for run in runs.iterdir():
                shutil.rmtree(run / "data", ignore_errors=True)

    def kfnb_cold(self, nb: Path, cache: bool = False) -> float:
        self._cleanup_runs() if not cache else None
        args = [KFNB, "run", str(nb)] + ([] if cache else ["--no-cache"])
        t0 = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        took = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"kfnb run failed:\n{done.stdout}\n{done.stderr}")
        if nb.stem == "d1":
            from kfnb.tracking import Store

            latest = Store(self.home).list_runs(limit=1)[0]
            self._record_handover("cold", sorted(Path(latest.artifacts_dir, "executed").iterdir()))
        return took

    def kfnb_warm(self, nb: Path) -> float:
        import kfnb
        from kfnb.tracking import Store

        self._cleanup_runs()
        pool = kfnb.warm(self.pool_size)
        _wait_full(pool, self.pool_size)
        t0 = time.perf_counter()
        run = kfnb.run(nb, store=Store(self.home), cache=False, pool_size=self.pool_size)
        took = time.perf_counter() - t0
        if run.status != "SUCCEEDED":
            raise RuntimeError(f"kfnb run failed: {run.record.error}")
        if nb.stem == "d1":
            executed = Path(run.record.artifacts_dir, "executed")
            self._record_handover("warm", sorted(executed.iterdir()))
        return took

    def step_notebooks(self, nb: Path) -> tuple[Path, list[str], dict[str, list[str]]]:
        from kfnb.dag import Pipeline
        from kfnb.materialize import write_step_notebooks

        out = self.folder / f"steps-{nb.stem}"
        pipeline = Pipeline.from_notebook(nb)
        if nb not in self._materialized:
            write_step_notebooks(pipeline, out, data_dir=out / "data")
            self._materialized[nb] = out
        order = [s.name for s in pipeline.toposort()]
        after = {s.name: list(s.after) for s in pipeline.steps}
        return out, order, after

    def papermill(self, nb: Path) -> float:
        import papermill

        out, order, _ = self.step_notebooks(nb)
        shutil.rmtree(out / "data", ignore_errors=True)
        t0 = time.perf_counter()
        for name in order:
            papermill.execute_notebook(
                str(out / f"{name}.ipynb"),
                str(out / f"{name}.out.ipynb"),
                progress_bar=False,
                cwd=str(out),
            )
        took = time.perf_counter() - t0
        if nb.stem == "d1":
            self._record_handover("papermill", [out / f"{n}.out.ipynb" for n in order])
        return took

    def elyra(self, nb: Path, exe: Path) -> float:
        from benchmarks.peers.elyra import run_pipeline, write_pipeline

        out, order, after = self.step_notebooks(nb)
        work = self.folder / f"elyra-{nb.stem}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        for name in order:  # Elyra overwrites the notebooks it runs: give it copies
            shutil.copy(out / f"{name}.ipynb", work / f"{name}.ipynb")
        nodes = [{"id": n, "notebook": str(work / f"{n}.ipynb"), "after": after[n]} for n in order]
        pipeline = write_pipeline(nodes, work / f"{nb.stem}.pipeline")
        shutil.rmtree(out / "data", ignore_errors=True)
        return run_pipeline(exe, pipeline, work, timeout=900)


def _wait_full(pool: Any, size: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while pool.stats()["ready"] < size or pool.stats()["live"] > size:
        if time.monotonic() > end:
            raise RuntimeError(f"the kernel pool did not fill: {pool.stats()}")
        time.sleep(0.02)


def _kfnb_importable_in(venv: Path) -> None:
    """Step notebooks import kfnb.marshal: make this checkout importable in Elyra's venv."""
    for site in venv.glob("lib/python*/site-packages"):
        (site / "kfnb-checkout.pth").write_text(str(ROOT) + "\n")


# -- measuring and printing ---------------------------------------------------------------------
def measure(fn: Callable[[], float], repeat: int) -> list[float]:
    """``repeat`` timings after one uncounted warm-up (first imports from disk, first page-cache
    allocations: they belong to no column)."""
    fn()
    return [fn() for _ in range(repeat)]


def fmt(times: list[float] | None) -> str:
    if not times:
        return "-"
    med = statistics.median(times)
    return f"{med:.2f} ({min(times):.2f}-{max(times):.2f})"


def ratio(a: list[float] | None, b: list[float] | None) -> str:
    if not a or not b:
        return "-"
    return f"{statistics.median(a) / statistics.median(b):.2f}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    return f"{os.cpu_count()} cores ({cpu}){mem}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peers", action="store_true", help="also time Elyra's local runtime")
    parser.add_argument("--only", default="L10,F8,D1,C10", help="workloads, comma-separated")
    parser.add_argument(
        "--pool-size", type=int, default=8, help="kernels kept ready for 'kfnb warm' (default 8)"
    )
    parser.add_argument("--json", type=Path, help="also write the raw times here")
    args = parser.parse_args(argv)
    wanted = [w.strip().upper() for w in args.only.split(",") if w.strip()]

    folder = Path(tempfile.mkdtemp(prefix="kfnb-bench-"))
    exe = None
    if args.peers:
        from benchmarks.peers.elyra import ensure_venv

        exe = ensure_venv()
        _kfnb_importable_in(exe.parent.parent)
    try:
        bench = Bench(folder, args.pool_size)
        nbs = write_workloads(folder)
        rows: dict[str, dict[str, list[float] | None]] = {}
        for w in wanted:
            print(f"measuring {w} ...", file=sys.stderr, flush=True)
            if w == "C10":
                bench.kfnb_cold(nbs["L10"], cache=True)  # fills the cache
                rows[w] = {
                    "cold": measure(lambda: bench.kfnb_cold(nbs["L10"], cache=True), args.repeat)
                }
                continue
            if w == "D1":
                for key in ("D0", "D1"):
                    rows[key] = {
                        "cold": measure(lambda k=key: bench.kfnb_cold(nbs[k]), args.repeat),
                        "warm": measure(lambda k=key: bench.kfnb_warm(nbs[k]), args.repeat),
                        "papermill": measure(lambda k=key: bench.papermill(nbs[k]), args.repeat),
                    }
                continue
            nb = nbs[w]
            rows[w] = {
                "cold": measure(lambda nb=nb: bench.kfnb_cold(nb), args.repeat),
                "warm": measure(lambda nb=nb: bench.kfnb_warm(nb), args.repeat),
                "papermill": measure(lambda nb=nb: bench.papermill(nb), args.repeat),
            }
            if exe is not None:
                rows[w]["elyra"] = measure(lambda nb=nb: bench.elyra(nb, exe), args.repeat)
    finally:
        from kfnb.kernels import shutdown_shared_pools

        shutdown_shared_pools()
        shutil.rmtree(folder, ignore_errors=True)

    print(
        f"machine: {machine()}; {args.repeat} runs each, seconds: median (min-max); "
        f"warm = {args.pool_size} kernels ready"
    )
    head = [
        "workload",
        "kfnb cold",
        "kfnb warm",
        "papermill loop",
        "Elyra",
        "cold/papermill",
        "warm/papermill",
        "cold/Elyra",
        "warm/Elyra",
    ]
    table = [head]
    for w, r in rows.items():
        table.append(
            [
                w,
                fmt(r.get("cold")),
                fmt(r.get("warm")),
                fmt(r.get("papermill")),
                fmt(r.get("elyra")),
                ratio(r.get("cold"), r.get("papermill")),
                ratio(r.get("warm"), r.get("papermill")),
                ratio(r.get("cold"), r.get("elyra")),
                ratio(r.get("warm"), r.get("elyra")),
            ]
        )
    if "D0" in rows and "D1" in rows:
        hand = ["D1-D0 (hand-over)"]
        for col in ("cold", "warm", "papermill"):
            a, b = rows["D1"].get(col), rows["D0"].get(col)
            hand.append(f"{statistics.median(a) - statistics.median(b):+.2f}" if a and b else "-")
        table.append(hand + ["-"] * 5)
        counted = {col: times[-args.repeat :] for col, times in bench.handover.items()}
        table.append(
            ["D1 hand-over"]
            + [fmt(counted.get(c)) for c in ("cold", "warm", "papermill")]
            + ["-"] * 5
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for i, row in enumerate(table):
        print("| " + " | ".join(c.ljust(wd) for c, wd in zip(row, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (wd + 2) for wd in widths) + "|")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
