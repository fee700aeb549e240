"""Step notebooks: their structure, and content hashes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

from kfnb import Pipeline
from kfnb.materialize import DATA_DIR_PARAM, step_hashes, step_notebook, write_step_notebooks

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Nb = Callable[..., Any]


def roles(notebook: nbformat.NotebookNode) -> list[str]:
    return [c.metadata.get("kfnb", {}).get("role", "?") for c in notebook.cells]


def test_step_notebook_layout() -> None:
    p = Pipeline.from_notebook(EXAMPLES / "churn.ipynb")
    snb = step_notebook(p, "prepare", data_dir="/data/run")
    assert roles(snb) == [
        "header",
        "parameters",
        "prelude",
        "prelude",
        "inputs",
        "step",
        "step",
        "outputs",
    ]
    params = snb.cells[1]
    assert params.metadata.tags == ["parameters"]
    assert "seed = 7" in params.source and f"{DATA_DIR_PARAM} = '/data/run'" in params.source
    assert [
        c.metadata.kfnb.get("cell")
        for c in snb.cells
        if c.metadata.kfnb["role"] in ("prelude", "step")
    ] == [1, 3, 9, 10]
    inputs = snb.cells[4].source
    assert "customers = _kfnb_marshal.load(f\"{kfnb_data_dir}/load_data\", 'customers'" in inputs
    outputs = snb.cells[-1].source
    assert "'X_train': X_train" in outputs and 'f"{kfnb_data_dir}/prepare"' in outputs
    assert snb.metadata.kernelspec.name == "python3"
    assert snb.metadata.kfnb == {
        "pipeline": "churn",
        "step": "prepare",
        "source": str(EXAMPLES / "churn.ipynb"),
    }
    nbformat.validate(snb)


def test_first_step_has_no_inputs_cell_and_last_no_outputs_cell(nb: Nb) -> None:
    p = Pipeline.from_nb(nb(("step:a", "x = 1"), ("step:b", "print(x)")))
    assert roles(step_notebook(p, "a")) == ["header", "parameters", "step", "outputs"]
    assert roles(step_notebook(p, "b")) == ["header", "parameters", "inputs", "step"]


def test_imports_from_upstream_steps_are_rerun(nb: Nb) -> None:
    p = Pipeline.from_nb(nb(("step:a", "import json as j\nx = 1"), ("step:b", "y = j.dumps(x)")))
    inputs = step_notebook(p, "b").cells[2].source
    assert "import json as j" in inputs
    assert "x = _kfnb_marshal.load" in inputs


def test_conditional_outputs_are_saved_only_when_bound(nb: Nb) -> None:
    p = Pipeline.from_nb(nb(("step:a", "x = 1\nif x:\n    y = 2"), ("step:b", "z = x + y")))
    outputs = step_notebook(p, "a").cells[-1].source
    assert "{'x': x} | {_k: globals()[_k] for _k in ('y', ) if _k in globals()}" in outputs


def test_write_step_notebooks(tmp_path: Path) -> None:
    p = Pipeline.from_notebook(EXAMPLES / "churn.ipynb")
    written = write_step_notebooks(p, tmp_path / "out")
    assert sorted(written) == sorted(p.step_names)
    ir = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert ir["order"][0] == "load_data" and ir["order"][-1] == "compare"
    assert ir["data_dir"] == str((tmp_path / "out" / "data").resolve())
    assert set(ir["hashes"]) == set(p.step_names)
    snb = nbformat.read(written["compare"], as_version=4)
    assert repr(ir["data_dir"]) in snb.cells[1].source


def test_hashes_are_stable_and_follow_dependencies(nb: Nb) -> None:
    def build(a_code: str = "x = seed", b_res: str = "limit:memory:1Gi") -> Pipeline:
        return Pipeline.from_nb(
            nb(
                ("pipeline-parameters", "seed = 1\nother = 2"),
                ("step:a", a_code),
                ("step:b", "y = 1"),
                ((["step:c", b_res]), "z = x + y"),
            )
        )

    base = step_hashes(build())
    assert base == step_hashes(build())
    assert len(set(base.values())) == 3
    changed = step_hashes(build(a_code="x = seed + 1"))
    assert changed["a"] != base["a"] and changed["c"] != base["c"]
    assert changed["b"] == base["b"]
    seed2 = step_hashes(build(), {"seed": 2})
    assert seed2["a"] != base["a"] and seed2["b"] == base["b"] and seed2["c"] != base["c"]
    assert step_hashes(build(), {"other": 3}) == base  # no step reads `other`
    res = step_hashes(build(b_res="limit:memory:2Gi"))
    assert res["c"] != base["c"] and res["a"] == base["a"]
