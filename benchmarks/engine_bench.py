"""The ``kfnb`` papermill engine against plain papermill, on the same notebook.

    python benchmarks/engine_bench.py [--repeat 3] [--json times.json]

Workload F8 (as in ``local_bench.py``): 8 independent steps that each sleep 2 s, then a step
joining their values, in one notebook with step tags. Plain papermill ignores the tags and runs
the cells one after another on one kernel (about 16 s of sleeping); the engine runs the notebook
as a kfnb pipeline: the 8 steps at once on warm kernels, then the join.

Columns, each the median (and min-max) of ``--repeat`` runs after one uncounted warm-up run, all
measured in this one process run, each a fresh process as a user types it; the columns take
turns (engine, cached, papermill, engine, ...) so that noise falls on all of them alike:

- ``papermill --engine kfnb``: the engine, with the step cache off (``KFNB_CACHE=0``), a fresh
  ``KFNB_HOME`` each run (a run store created, kernels started from nothing);
- ``papermill --engine kfnb`` (cached): the same notebook again with the cache on, after one
  identical run: every step served from the cache;
- ``papermill``: plain papermill (its nbclient engine), the same notebook.

Ratio: engine / plain papermill (target: at most 0.25).
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

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
PAPERMILL = str(Path(sys.executable).with_name("papermill"))
KERNEL = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}
TARGET = 0.25


def write_f8(folder: Path) -> Path:
    cells = [(f"step:sleep{i}", f"import time\ntime.sleep(2)\nv{i} = {i}") for i in range(8)]
    cells.append(("step:join", "total = " + " + ".join(f"v{i}" for i in range(8)) + "\ntotal"))
    nb = new_notebook(
        cells=[new_code_cell(src, metadata={"tags": [tag]}) for tag, src in cells], metadata=KERNEL
    )
    path = folder / "f8.ipynb"
    nbformat.write(nb, path)
    return path


class Bench:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def _papermill(self, nb: Path, *extra: str, env: dict[str, str] | None = None) -> float:
        self.count += 1
        out = self.folder / f"out-{self.count}.ipynb"
        start = time.perf_counter()
        subprocess.run(
            [PAPERMILL, "--no-progress-bar", *extra, str(nb), str(out)],
            cwd=nb.parent,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        elapsed = time.perf_counter() - start
        result = nbformat.read(out, as_version=4).cells[-1].outputs
        assert result and result[-1]["data"]["text/plain"] == "28", result
        return elapsed

    def engine(self, nb: Path) -> float:
        home = self.folder / f"home-{self.count}"
        t = self._papermill(nb, "--engine", "kfnb", env={"KFNB_HOME": str(home), "KFNB_CACHE": "0"})
        shutil.rmtree(home, ignore_errors=True)
        return t

    def engine_cached(self, nb: Path) -> float:
        return self._papermill(nb, "--engine", "kfnb", env={"KFNB_HOME": str(self.folder / "c")})

    def plain(self, nb: Path) -> float:
        return self._papermill(nb)


def measure(columns: dict[str, Callable[[], float]], repeat: int) -> dict[str, list[float]]:
    """``repeat`` timings of each column after one uncounted warm-up round (first imports from
    disk). The columns take turns, round after round, so that a noisy spell of this shared
    machine falls on all of them alike, not on whichever ran then."""
    for fn in columns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in columns}
    for _ in range(repeat):
        for name, fn in columns.items():
            times[name].append(fn())
    return times


def fmt(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} ({min(times):.2f}-{max(times):.2f})"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the raw times here")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="kfnb-engine-bench-"))
    try:
        nb = write_f8(folder)
        bench = Bench(folder)
        print("measuring F8 ...", file=sys.stderr, flush=True)
        times = measure(
            {
                "engine": lambda: bench.engine(nb),
                "engine_cached": lambda: bench.engine_cached(nb),
                "papermill": lambda: bench.plain(nb),
            },
            args.repeat,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ratio = statistics.median(times["engine"]) / statistics.median(times["papermill"])
    cached = statistics.median(times["engine_cached"]) / statistics.median(times["papermill"])
    print(f"machine: {machine()}; {args.repeat} runs each, seconds: median (min-max)")
    head = [
        "workload",
        "papermill --engine kfnb",
        "--engine kfnb, cached",
        "papermill",
        "engine/papermill",
        "cached/papermill",
    ]
    row = [
        "F8",
        fmt(times["engine"]),
        fmt(times["engine_cached"]),
        fmt(times["papermill"]),
        f"{ratio:.2f}",
        f"{cached:.2f}",
    ]
    widths = [max(len(a), len(b)) for a, b in zip(head, row, strict=True)]
    for line in (head, row):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
    verdict = "met" if ratio <= TARGET else "missed"
    print(f"target engine/papermill <= {TARGET}: {verdict} ({ratio:.2f})")
    if args.json:
        args.json.write_text(json.dumps({"F8": times, "ratio": ratio}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
