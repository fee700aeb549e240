"""Kale's notebook conventions, each reproduced by a small notebook of our own (docs/kale.md).

``tests/fixtures/kale/paint_wall.ipynb`` gathers them in one notebook as Kale's UI writes it:
its metadata (``base_image``, ``enable_caching``, ``volumes``, ``katib_metadata``, ...), typed
``pipeline-parameters`` and ``pipeline-metrics`` that print parameters as well as results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nbbuild import build_notebook

import kfnb
from kfnb import Pipeline
from kfnb.backends.kfp.compiler import component_source
from kfnb.errors import NotebookError
from kfnb.hashing import step_hashes
from kfnb.tracking import Store

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "kale" / "paint_wall.ipynb"
PARAMS = ("pipeline-parameters", "d1 = 5\nd2 = 6.5\nname = 'x'\nflag = True")


def pipe(*cells: Any, kale: dict[str, Any] | None = None) -> Pipeline:
    meta = {"kubeflow_notebook": kale} if kale is not None else None
    return Pipeline.from_nb(build_notebook(*cells, metadata=meta))


# -- pipeline-metrics may print a pipeline parameter ----------------------------------------------
@pytest.mark.parametrize(
    ("cells", "recorder"),
    [
        pytest.param(
            [("step:a", "m = d1 * 2"), ("step:b", "s = m + 1")], "a", id="the-step-that-reads-it"
        ),
        pytest.param(
            [("step:a", "m = d1 * 2"), ("step:b", "s = d1 + m")], "b", id="the-latest-reader"
        ),
        pytest.param([("step:a", "m = 1"), ("step:b", "s = m + 1")], "a", id="none-reads-it"),
    ],
)
def test_a_metric_may_name_a_parameter(cells: list[Any], recorder: str) -> None:
    p = pipe(PARAMS, *cells, ("pipeline-metrics", "print(d1)\nprint(s)"))
    assert [(m.name, m.step) for m in p.metrics] == [("d1", recorder), ("s", "b")]
    step = p.step(recorder)
    assert "d1" in step.outputs  # its save-outputs cell saves the run's value
    assert "d1" in p.step_parameters(step)  # and the step receives the run's value
    assert p.parameter_metrics(step) == ["d1"]
    _fn, source = component_source(p, step)
    assert "'d1': d1" in source and "metric_names=['d1'" in source
    # a cached step must not record another run's value
    assert step_hashes(p, {"d1": 5})[recorder] != step_hashes(p, {"d1": 6})[recorder]


def test_a_parameter_a_step_rebinds_is_that_steps_result() -> None:
    p = pipe(PARAMS, ("step:a", "d1 = d1 + 1"), ("pipeline-metrics", "print(d1)"))
    assert [(m.name, m.step) for m in p.metrics] == [("d1", "a")]
    assert p.parameter_metrics(p.step("a")) == []


def test_an_unknown_metric_names_the_fix() -> None:
    with pytest.raises(kfnb.KfnbError) as err:
        pipe(PARAMS, ("step:a", "total = d1"), ("pipeline-metrics", "print(totl)"))
    assert "metric 'totl' is not defined by any step (did you mean 'total'?)" in err.value.message
    assert err.value.fix and "pipeline parameter" in err.value.fix


def test_parameter_metrics_reach_a_local_run(tmp_path: Path) -> None:
    """Real kernels: the parameter's default, then an overridden value, are the metrics."""
    store = Store(tmp_path / "home")
    run = kfnb.run(FIXTURE, store=store)
    assert run.status == "SUCCEEDED", run.record.error
    assert run.metrics == {"width": 4.0, "seed": 7.0, "paint": 18.0, "cans": 5.0}
    run = kfnb.run(FIXTURE, {"width": 5, "seed": 9}, store=store)
    assert run.status == "SUCCEEDED", run.record.error
    assert run.metrics == {"width": 5.0, "seed": 9.0, "paint": 22.5, "cans": 6.0}


def test_parameter_metrics_reach_the_compiled_kfp_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled pipeline, run by kfp.local: the pod's code logs the parameter metrics."""
    from kfnb.backends.kfp.local_run import run_compiled

    monkeypatch.chdir(tmp_path)
    compiled = kfnb.compile(FIXTURE, tmp_path / "paint.yaml")
    remote = run_compiled(compiled, {"width": 5, "seed": 9}, pipeline_root=tmp_path / "root")
    assert remote.metrics("measure") == {"width": 5.0, "seed": 9.0, "paint": 22.5}
    assert remote.metrics() == {"width": 5.0, "seed": 9.0, "paint": 22.5, "cans": 6.0}


# -- the fixture notebook, as Kale derives it -----------------------------------------------------
def test_the_kale_fixture_describes_as_kale_derives_it() -> None:
    p = Pipeline.from_notebook(FIXTURE)
    assert (p.name, p.description, p.experiment, p.image) == (
        "paint-wall",
        "How much paint a wall needs",
        "paint",
        "python:3.12",
    )
    assert {n: (q.type, q.default) for n, q in p.parameters.items()} == {
        "width": ("int", 4),
        "height": ("int", 3),
        "coats": ("float", 1.5),
        "colour": ("str", "teal"),
        "glossy": ("bool", False),
        "seed": ("int", 7),
    }
    assert [c.index for c in p.prelude] == [2]  # the skip cell (!pip install) is left out
    assert p.edges() == [("measure", "buy")]
    measure, buy = p.steps
    assert [c.index for c in measure.cells] == [4, 5]  # the untagged cell joins the step above
    assert (measure.resources, measure.cache, buy.cache) == ({"memory": "1Gi"}, True, False)
    assert buy.labels == {"shop": "hardware"}
    assert measure.annotations == buy.annotations == {"owner": "decorators"}
    assert measure.image == buy.image == "python:3.12"
    assert [(m.name, m.step) for m in p.metrics] == [
        ("width", "measure"),
        ("seed", "measure"),
        ("paint", "measure"),
        ("cans", "buy"),
    ]


# -- tags -----------------------------------------------------------------------------------------
def _shape(p: Pipeline) -> dict[str, Any]:
    return {
        "prelude": [c.index for c in p.prelude],
        "steps": {s.name: [c.index for c in s.cells] for s in p.steps},
    }


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            [("block:imports", "import os"), ("block:s", "x = os.sep")],
            {"prelude": [0], "steps": {"s": [1]}},
            id="block:imports-is-the-imports-section",
        ),
        pytest.param(
            [("step:functions", "def f():\n    return 1"), ("step:s", "x = f()")],
            {"prelude": [0], "steps": {"s": [1]}},
            id="step:functions-is-the-functions-section",
        ),
        pytest.param(
            [("step:s", "x = 1"), ("block:skip", "y = undefined_name"), "z = x"],
            {"prelude": [], "steps": {"s": [0, 2]}},
            id="block:skip-is-skip",
        ),
        pytest.param(
            [("step:s", "x = 1"), (["skip", "prev:s"], "y = undefined_name"), "z = x"],
            {"prelude": [], "steps": {"s": [0, 2]}},
            id="skip-wins-over-prev",
        ),
        pytest.param(
            [("step:s", "x = 1"), ("block:", "y = x")],
            {"prelude": [], "steps": {"s": [0, 1]}},
            id="empty-block-tag-continues",
        ),
        pytest.param(
            [(["step:s", "report:disabled"], "x = 1")],
            {"prelude": [], "steps": {"s": [0]}},
            id="report-tag-ignored",
        ),
        pytest.param(
            [("step:s", "%matplotlib inline\n!pip install --user x\nx = 1"), ("step:t", "y = x")],
            {"prelude": [], "steps": {"s": [0], "t": [1]}},
            id="magics-and-shell-in-a-step",
        ),
    ],
)
def test_kale_tag_conventions(cells: list[Any], expected: dict[str, Any]) -> None:
    assert _shape(pipe(*cells)) == expected


@pytest.mark.parametrize(
    ("tags", "defaults", "kale", "expected"),
    [
        pytest.param(["cache:disabled"], [], {}, False, id="cell-disabled"),
        pytest.param(["cache:enabled"], ["cache:disabled"], {}, True, id="cell-enabled-wins"),
        pytest.param([], ["cache:disabled"], {}, False, id="defaults-disabled"),
        pytest.param([], [], {"enable_caching": False}, False, id="enable-caching-false"),
        pytest.param(["cache:enabled"], [], {"enable_caching": False}, True, id="cell-over-kale"),
        pytest.param([], ["cache:enabled"], {"enable_caching": False}, True, id="defaults-over"),
        pytest.param([], [], {"enable_caching": True}, True, id="enable-caching-true"),
    ],
)
def test_kale_caching(
    tags: list[str], defaults: list[str], kale: dict[str, Any], expected: bool
) -> None:
    p = pipe((["step:s", *tags], "x = 1"), kale={"steps_defaults": defaults, **kale, "volumes": []})
    assert p.steps[0].cache is expected


def test_enable_caching_must_be_a_boolean() -> None:
    with pytest.raises(NotebookError) as err:
        pipe(("step:s", "x = 1"), kale={"enable_caching": "no"})
    assert "kubeflow_notebook.enable_caching must be true or false" in err.value.message


def test_notebook_composition_is_refused_with_a_fix() -> None:
    with pytest.raises(NotebookError) as err:
        pipe(("notebook:notebook_a", ""), ("step:s", "x = 1"))
    assert "Kale's notebook composition" in err.value.message
    assert err.value.cell_index == 0 and err.value.fix


# -- notebook metadata ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kale", "image"),
    [
        pytest.param({"base_image": "python:3.12"}, "python:3.12", id="base_image"),
        pytest.param({"docker_image": "img:1"}, "img:1", id="docker_image"),
        pytest.param({"base_image": "new:2", "docker_image": "old:1"}, "new:2", id="base-first"),
        pytest.param({"base_image": "", "docker_image": ""}, None, id="empty"),
        pytest.param({"steps_defaults": {"base_image": "d:3"}}, None, id="parsed-defaults"),
    ],
)
def test_kale_images(kale: dict[str, Any], image: str | None) -> None:
    p = pipe(("step:s", "x = 1"), kale=kale)
    assert p.image == image
    assert p.steps[0].image == (image or kale.get("steps_defaults", {}).get("base_image"))


def test_kale_parsed_steps_defaults() -> None:
    kale = {
        "steps_defaults": {
            "labels": {"team": "ml"},
            "annotations": {"a": "b"},
            "limits": {"memory": "2Gi"},
            "enable_caching": False,
        }
    }
    s = pipe(("step:s", "x = 1"), kale=kale).steps[0]
    assert (s.labels, s.annotations, s.resources, s.cache) == (
        {"team": "ml"},
        {"a": "b"},
        {"memory": "2Gi"},
        False,
    )


def test_kale_only_keys_leave_the_pipeline_as_it_was() -> None:
    """volumes, katib_metadata, autosnapshot, ... are Kale's cluster features: kfnb ignores them
    (docs/kale.md says why), so the pipeline is the one without them."""
    cells = (PARAMS, ("step:s", "x = d1"))
    kale = {
        "volumes": [{"name": "v", "type": "pvc", "mount_point": "/data"}],
        "katib_run": True,
        "katib_metadata": {"objective": {"objectiveMetricName": "x"}, "parameters": []},
        "autosnapshot": True,
        "snapshot_volumes": True,
        "marshal_volume": True,
        "timeout": 60,
        "storage_class_name": "fast",
        "volume_access_mode": "rwm",
        "kfp_host": "http://example.invalid",
    }
    assert pipe(*cells, kale=kale).to_dict() == pipe(*cells, kale={}).to_dict()
