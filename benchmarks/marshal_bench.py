"""Micro-benchmark: kfnb.marshal save/load against plain pickle.

    python benchmarks/marshal_bench.py [--repeat 3] [--dir /tmp]

Times (median of ``--repeat`` runs, seconds) to save and load a 200 MB float64 numpy array and a
1M-row x 10-column DataFrame with kfnb.marshal and with ``pickle.dump``/``pickle.load``
(protocol 5) on a file in the same directory. A numpy load through kfnb is a lazy memory map, so
the table also shows load + one full pass over the data (``use``), which is what a step pays when
it reads every element; save+load adds save and load+use. Every save writes a new file into an
empty directory, as each pipeline run does. The second table measures the cost of kfnb's
``__main__`` detection on the pickle path (the ``PickleSerializer`` against a bare
``pickle.dump``). Files stay in the page cache: this measures CPU and memory copies, not disks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fractions
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kfnb.marshal import load, save
from kfnb.marshal.pickle_ import PickleSerializer


def median_time(fn: Callable[[], Any], repeat: int, directory: Path | None = None) -> float:
    """Median wall time of ``fn``, after one untimed warm-up run; with ``directory``, each run
    starts from an empty directory, so every save writes a new file, as a pipeline run does."""
    times = []
    for attempt in range(repeat + 1):
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
        start = time.perf_counter()
        fn()
        if attempt:
            times.append(time.perf_counter() - start)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
    return statistics.median(times)


def touch(value: Any) -> None:
    if isinstance(value, np.ndarray):
        value.sum()
    elif isinstance(value, pd.DataFrame):
        value.memory_usage(deep=False)


def pickle_dump(value: Any, path: Path) -> None:
    with open(path, "wb") as file:
        pickle.dump(value, file, protocol=5)


def pickle_load(path: Path) -> Any:
    with open(path, "rb") as file:
        return pickle.load(file)


def bench_value(label: str, value: Any, directory: Path, repeat: int) -> list[str]:
    scratch = directory / "scratch"
    kfnb_path = save(value, directory / "kfnb", "v")
    pickle_path = directory / "plain.pickle"
    pickle_dump(value, pickle_path)
    row = {
        "kfnb save": median_time(lambda: save(value, scratch, "v"), repeat, scratch),
        "kfnb load": median_time(lambda: load(kfnb_path.parent, "v"), repeat),
        "kfnb load+use": median_time(lambda: touch(load(kfnb_path.parent, "v")), repeat),
        "pickle save": median_time(lambda: pickle_dump(value, scratch / "v"), repeat, scratch),
        "pickle load+use": median_time(lambda: touch(pickle_load(pickle_path)), repeat),
    }
    row["kfnb save+load"] = row["kfnb save"] + row["kfnb load+use"]
    row["pickle save+load"] = row["pickle save"] + row["pickle load+use"]
    sizes = f"{kfnb_path.stat().st_size / 1e6:.0f}/{pickle_path.stat().st_size / 1e6:.0f}"
    return [label, kfnb_path.suffix, *(f"{row[k]:.3f}" for k in COLUMNS), sizes]


def bench_detection(label: str, value: Any, directory: Path, repeat: int) -> list[str]:
    scratch = directory / "scratch"
    path = scratch / "v.pkl"
    checked = median_time(lambda: PickleSerializer().dump(value, path), repeat, scratch)
    plain = median_time(lambda: pickle_dump(value, path), repeat, scratch)
    return [label, f"{checked:.3f}", f"{plain:.3f}", f"{(checked / plain - 1) * 100:+.1f}%"]


COLUMNS = [
    "kfnb save",
    "kfnb load",
    "kfnb load+use",
    "pickle save",
    "pickle load+use",
    "kfnb save+load",
    "pickle save+load",
]


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for line in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(cell).rjust(w) for cell, w in zip(line, widths, strict=True)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    rows_n = 1_000_000
    frame = pd.DataFrame({f"f{i}": rng.random(rows_n) for i in range(7)})
    frame["i0"] = rng.integers(0, 1_000, rows_n)
    frame["cat"] = pd.Categorical(rng.choice(["red", "green", "blue"], rows_n))
    frame["name"] = pd.Series(rng.integers(0, 50_000, rows_n)).map("user{}".format)
    values = {
        "ndarray float64 200 MB": rng.random(25_000_000),
        "DataFrame 1M x 10 (7 f8, i8, cat, str)": frame,
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        print(f"python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}")
        print(f"seconds, median of {args.repeat}; {directory} ({os.uname().sysname})\n")
        rows = [bench_value(label, v, directory, args.repeat) for label, v in values.items()]
        print_table(["value", "format", *COLUMNS, "MB kfnb/pickle"], rows)

        arrays = {f"w{i}": rng.random(2_500_000) for i in range(10)}
        dates = [dt.date(2000, 1, 1) + dt.timedelta(days=i % 9000) for i in range(200_000)]
        fractions_ = [fractions.Fraction(i, 7) for i in range(200_000)]
        records = [{"id": i, "score": i / 3, "tag": "x"} for i in range(200_000)]
        print("\n__main__ detection on the pickle path (PickleSerializer vs bare pickle.dump):\n")
        detection = [
            bench_detection("dict of 10 x 20 MB arrays", arrays, directory, args.repeat),
            bench_detection("list of 200k datetime.date", dates, directory, args.repeat),
            bench_detection("list of 200k Fraction", fractions_, directory, args.repeat),
            bench_detection("list of 200k dicts", records, directory, args.repeat),
        ]
        print_table(["value (all .pkl)", "kfnb", "pickle", "overhead"], detection)


if __name__ == "__main__":
    main()
