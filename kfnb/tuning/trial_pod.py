"""What runs in a Katib trial's pod: ``python -m kfnb.tuning.trial_pod notebook|train``.

Katib's StdOut collector reads the primary container's output for ``name=value`` lines. A
metric that ``kfnb.log_metric`` records inside a pipeline step goes to the run store (the step
runs in a Jupyter kernel, whose output is the step's log), so this entry prints it instead:

- ``notebook [PATH] [-p NAME VALUE]...``: runs the notebook (``PATH``, else the one packed in
  ``KFNB_TRIAL_NOTEBOOK``) as a pipeline here, with the local backend, and prints every metric
  value the run records as it arrives (a step's intermediate values, then the pipeline
  metrics), one ``<RFC 3339 time> name=value`` line each: Katib's median stopping needs the
  time. It exits 0 when the run succeeded, 1 (with the failing step's error) otherwise;
- ``train [--dir DIR]``: unpacks the training program of ``KFNB_PROGRAM``, writes the trial's
  values into its arguments and runs it under ``torchrun``, passing its output through and
  printing each ``KFNB_METRIC`` line (rank 0's ``kfnb.log_metric``) as a ``name=value`` line too;
  it exits with ``torchrun``'s code.

The trial's values come from ``KFNB_PARAM_<name>`` (Katib writes them into the template),
typed through the study's space in ``KFNB_TRIAL`` (with the fixed parameters); ``-p`` gives more
as text. SIGTERM (Katib stopping the trial early) cancels the run, or is passed to ``torchrun``,
and the exit is non-zero. Numbers are written with positional digits only (``0.00001``, not
``1e-05``), which every Katib version's default filter reads whole; non-finite values and names
Katib cannot read are left out.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .katib_values import METRIC_NAME, NOTEBOOK_ENV, PARAM_ENV, TRIAL_ENV, number_text, typed

POLL_S = 0.2
TERMINATED = 143  # 128 + SIGTERM, as a shell reports it


def metric_line(name: str, value: float, when: float) -> str | None:
    """``<time> name=value`` for Katib's StdOut collector (``None``: Katib cannot read it)."""
    if not METRIC_NAME.match(name) or not math.isfinite(value):
        return None
    stamp = datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp} {name}={number_text(value)}"


def trial_values(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(fixed parameters, the trial's values typed through the space, the notebook's name)."""
    from .space import parse_space

    info = json.loads(env.get(TRIAL_ENV) or "{}")
    space = parse_space(info["space"]) if info.get("space") else {}
    values = {
        key[len(PARAM_ENV) :]: typed(space, key[len(PARAM_ENV) :], text)
        for key, text in env.items()
        if key.startswith(PARAM_ENV)
    }
    return dict(info.get("fixed") or {}), values, info.get("notebook")


def unpack(packed: str, folder: Path) -> Path:
    """Unpack a ``pack()``ed folder (base64 of a gzipped tar) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(packed)), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):  # refuses links and paths out of the folder
            tar.extractall(folder, filter="data")
        else:  # pragma: no cover - Python before 3.10.12
            tar.extractall(folder)
    return folder


def _say(text: str) -> None:
    print(f"kfnb trial: {text}", file=sys.stderr, flush=True)


def _emit(line: str | None) -> None:
    if line is not None:
        print(line, flush=True)


def run_notebook(path: Path, params: Mapping[str, Any], strings: Sequence[tuple[str, str]]) -> int:
    """Run the notebook here as a pipeline, printing its metrics; the exit code."""
    from ..api import run
    from ..settings import Settings
    from .local import _child_error

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = Settings.load()
    pipeline_run = run(
        path, dict(params), param_strings=list(strings), wait=False, settings=settings
    )
    store = pipeline_run.store
    _say(f"run {pipeline_run.id} of {path.name} with {json.dumps(dict(params), default=repr)}")
    seen: set[tuple[Any, ...]] = set()
    while True:
        done = pipeline_run.done  # read before the metrics, so the last ones are printed
        for m in store.metrics(pipeline_run.id):
            key = (m.timestamp, m.name, m.step, m.source, m.value)
            if key not in seen:
                seen.add(key)
                _emit(metric_line(m.name, m.value, m.timestamp))
        if done:
            break
        if stop.is_set():
            _say("stopped (SIGTERM): cancelling the run")
            pipeline_run.cancel()
            pipeline_run.wait(60)
            return TERMINATED
        stop.wait(POLL_S)
    record = store.get_run(pipeline_run.id)
    if record.status == "SUCCEEDED":
        _say(f"run {record.id} SUCCEEDED")
        return 0
    _say(f"run {record.id} {record.status}: {_child_error(record)}")
    return 1


def run_training(folder: Path, values: Mapping[str, Any], command: Sequence[str] = ()) -> int:
    """Unpack the program, give it the trial's values, run it (``torchrun``); the exit code."""
    from ..tracking.context import METRIC_LINE_PREFIX
    from ..training.manifests import PROGRAM_ENV
    from ..training.program import ARGS_FILE, PROGRAM_FILE

    packed = os.environ.get(PROGRAM_ENV)
    if not packed:
        _say(f"no program in ${PROGRAM_ENV}")
        return 2
    unpack(packed, folder)
    args_file = folder / ARGS_FILE
    args = json.loads(args_file.read_text())
    args.update(values)
    args_file.write_text(json.dumps(args))
    argv = list(command) or [
        sys.executable,
        "-m",
        "torch.distributed.run",
        str(folder / PROGRAM_FILE),
    ]
    child = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )

    def forward(signum: int, _frame: Any) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    assert child.stdout is not None
    for line in child.stdout:
        sys.stdout.write(line)
        if line.startswith(METRIC_LINE_PREFIX):
            try:
                m = json.loads(line[len(METRIC_LINE_PREFIX) :])
                _emit(metric_line(str(m["name"]), float(m["value"]), time.time()))
            except (ValueError, KeyError, TypeError):
                pass
        sys.stdout.flush()
    code = child.wait()
    return code if code >= 0 else 128 - code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kfnb.tuning.trial_pod")
    sub = parser.add_subparsers(dest="mode", required=True)
    nb = sub.add_parser("notebook", help="run a notebook as a pipeline, printing its metrics")
    nb.add_argument("path", nargs="?", type=Path, help=f"the notebook (default: ${NOTEBOOK_ENV})")
    nb.add_argument(
        "-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    train = sub.add_parser("train", help="run the packed training program under torchrun")
    train.add_argument("--dir", type=Path, default=None, help="where to unpack the program")
    train.add_argument("command", nargs="*", help="run this instead of torchrun (after --)")
    args = parser.parse_args(argv)
    try:
        fixed, values, name = trial_values(os.environ)
    except Exception as err:  # a broken template: say it, fail the trial
        _say(f"cannot read the trial's parameters: {err}")
        return 2
    if args.mode == "train":
        from ..training.manifests import UNPACK_DIR

        return run_training(args.dir or Path(UNPACK_DIR), values, args.command)
    path = args.path
    if path is None:
        packed = os.environ.get(NOTEBOOK_ENV)
        if not packed or not name:
            _say(f"no notebook given and none in ${NOTEBOOK_ENV}")
            return 2
        path = unpack(packed, Path(tempfile.mkdtemp(prefix="kfnb-trial-"))) / name
    try:
        return run_notebook(path, {**fixed, **values}, [(n, v) for n, v in args.param])
    except Exception as err:
        _say(f"{type(err).__name__}: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
