"""Every step notebook, run in order with real papermill and real kernels, gives the same
values as the original notebook run top to bottom."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
from nbformat.v4 import new_code_cell

from kfnb import Pipeline
from kfnb.materialize import write_step_notebooks

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = [
    ROOT / "examples" / "churn.ipynb",
    ROOT / "examples" / "sales_forecast.ipynb",
    ROOT / "tests" / "fixtures" / "plain_papermill.ipynb",
    ROOT / "examples" / "cancer_models.ipynb",
]

PROBE = """
import cloudpickle as _probe_cp, types as _probe_types
_probe = {}
for _probe_name in %r:
    _probe_value = globals().get(_probe_name, _probe_types)
    if not isinstance(_probe_value, (_probe_types.ModuleType, _probe_types.FunctionType, type)):
        _probe[_probe_name] = _probe_cp.dumps(_probe_value)
with open(%r, "wb") as _probe_file:
    _probe_file.write(_probe_cp.dumps(_probe))
"""


def probe_cell(names: list[str], path: Path) -> nbformat.NotebookNode:
    return new_code_cell(PROBE % (names, str(path)))


def run(notebook: Path, out: Path, cwd: Path) -> None:
    papermill.execute_notebook(
        str(notebook),
        str(out),
        kernel_name="python3",
        cwd=str(cwd),
        progress_bar=False,
        log_output=False,
    )


def same(a: Any, b: Any) -> bool:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
        return True
    if isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b)
        return True
    if isinstance(a, pd.Index):
        pd.testing.assert_index_equal(a, b, exact=True)
        return True
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a).__name__ == type(b).__name__ and all(
            same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.random.Generator):
        return a.bit_generator.state == b.bit_generator.state
    if a is not None and type(a).__eq__ is object.__eq__ and hasattr(a, "__getstate__"):
        # no equality of its own (a fitted sklearn estimator, its trees): the same type and the
        # same state, attribute by attribute (parameters and every fitted array)
        return type(a) is type(b) and same(a.__getstate__(), b.__getstate__())
    return bool(a == b)


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_step_notebooks_give_the_values_of_a_top_to_bottom_run(
    source: Path, tmp_path: Path
) -> None:
    pipeline = Pipeline.from_notebook(source)
    probes = {
        s.name: sorted((set(s.facts.writes) | set(s.facts.mutates)) - set(s.facts.imports))
        for s in pipeline.steps
        if s.facts
    }

    # 1. the original notebook, with a probe after the last cell of each step
    original = nbformat.read(source, as_version=4)
    for step in sorted(pipeline.steps, key=lambda s: -s.cells[-1].index):
        at = step.cells[-1].index + 1
        original.cells.insert(at, probe_cell(probes[step.name], tmp_path / f"{step.name}.orig"))
    whole = tmp_path / "original.ipynb"
    nbformat.write(original, whole)
    run(whole, tmp_path / "original.out.ipynb", source.parent)

    # 2. each step notebook on its own, in dependency order, values passed through kfnb.marshal
    written = write_step_notebooks(pipeline, tmp_path / "steps", data_dir=tmp_path / "data")
    for step in pipeline.toposort():
        snb = nbformat.read(written[step.name], as_version=4)
        snb.cells.append(probe_cell(probes[step.name], tmp_path / f"{step.name}.step"))
        nbformat.write(snb, written[step.name])
        run(written[step.name], tmp_path / f"{step.name}.out.ipynb", source.parent)

    compared = 0
    for step in pipeline.steps:
        before = pickle.loads((tmp_path / f"{step.name}.orig").read_bytes())
        after = pickle.loads((tmp_path / f"{step.name}.step").read_bytes())
        assert before.keys() == after.keys(), step.name
        for name in before:
            a, b = cloudpickle.loads(before[name]), cloudpickle.loads(after[name])
            assert same(a, b), f"{step.name}.{name}: {a!r} != {b!r}"
            compared += 1
    assert compared >= len(pipeline.steps)


def test_plain_papermill_cli_runs_a_step_notebook_with_parameters(tmp_path: Path) -> None:
    pipeline = Pipeline.from_notebook(NOTEBOOKS[2])
    written = write_step_notebooks(pipeline, tmp_path / "steps")
    out = tmp_path / "out.ipynb"
    papermill_cli = Path(sys.executable).with_name("papermill")
    subprocess.run(
        [
            str(papermill_cli),
            str(written["plain_papermill"]),
            str(out),
            "-p",
            "rows",
            "3",
            "-p",
            "label",
            "cli",
            "--no-progress-bar",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    executed = nbformat.read(out, as_version=4)
    result = executed.cells[-1].outputs[0]["data"]["text/plain"]
    assert result == "{'label': 'cli', 'mean': 1.6666666666666667, 'n': 3}"


def test_fan_out_steps_read_upstream_values_from_the_data_folder(tmp_path: Path) -> None:
    pipeline = Pipeline.from_notebook(NOTEBOOKS[0])
    written = write_step_notebooks(pipeline, tmp_path / "steps", data_dir=tmp_path / "data")
    for name in ["load_data", "prepare", "train_baseline"]:
        run(written[name], tmp_path / f"{name}.out.ipynb", NOTEBOOKS[0].parent)
    produced = sorted(p.name for p in (tmp_path / "data" / "prepare").iterdir())
    assert produced == ["X_test.npy", "X_train.npy", "y_test.npy", "y_train.npy"]
    assert sorted(p.name for p in (tmp_path / "data" / "load_data").iterdir()) == [
        "customers.arrow"
    ]
