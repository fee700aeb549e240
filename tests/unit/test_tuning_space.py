"""Search spaces: the three ways to write them, Katib's form both ways, checks against what a
study tunes, algorithms by kfnb's and Katib's names, and Kale's katib_metadata."""

from __future__ import annotations

from pathlib import Path

import nbformat
import optuna
import pytest

from kfnb.dag import Param
from kfnb.tuning import Choice, Float, Int, Median, SpaceError, StudySpec, parse_space
from kfnb.tuning.algorithms import algorithm, grid_points, pruning, sampler
from kfnb.tuning.space import check_space, grid_size, load_space_file, space_to_dict
from kfnb.tuning.spec import from_metadata, katib_metadata

KATIB = [
    {"name": "lr", "parameterType": "double",
     "feasibleSpace": {"min": "0.001", "max": "0.1", "distribution": "logUniform"}},
    {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "5"}},
    {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
    {"name": "batch", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32", "64"]}},
    {"name": "drop", "parameterType": "double",
     "feasibleSpace": {"min": "0.0", "max": "0.5", "step": "0.1"}},
]  # fmt: skip


def test_the_three_forms_read_into_the_same_space() -> None:
    python = {
        "lr": Float(0.001, 0.1, log=True),
        "layers": Int(1, 5),
        "opt": Choice(["sgd", "adam"]),
        "batch": Choice([16, 32, 64]),
        "drop": Float(0.0, 0.5, step=0.1),
    }
    short = {
        "lr": {"float": [0.001, 0.1], "log": True},
        "layers": {"int": [1, 5]},
        "opt": {"choice": ["sgd", "adam"]},
        "batch": {"choice": [16, 32, 64]},
        "drop": {"float": [0.0, 0.5], "step": 0.1},
    }
    assert parse_space(python) == parse_space(short) == parse_space(KATIB) == python
    assert parse_space({"parameters": KATIB}) == python  # katib_metadata's shape
    assert parse_space(space_to_dict(python)) == python  # what a study's record keeps


def test_katib_form_round_trips_with_types_kept() -> None:
    space = parse_space(KATIB)
    assert [space[n].to_katib(n) for n in space] == [
        {"name": "lr", "parameterType": "double",
         "feasibleSpace": {"min": "0.001", "max": "0.1", "distribution": "logUniform"}},
        {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "5"}},
        {"name": "opt", "parameterType": "categorical",
         "feasibleSpace": {"list": ["sgd", "adam"]}},
        {"name": "batch", "parameterType": "discrete",
         "feasibleSpace": {"list": ["16", "32", "64"]}},
        {"name": "drop", "parameterType": "double",
         "feasibleSpace": {"min": "0.0", "max": "0.5", "step": "0.1"}},
    ]  # fmt: skip
    assert parse_space([space[n].to_katib(n) for n in space]) == space


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"x": {"float": [2, 1]}}, "low 2 is above high 1"),
        ({"x": {"float": [0, 1], "log": True}}, "log scale needs low > 0"),
        ({"x": {"int": [1.5, 3]}}, "must be an integer"),
        ({"x": {"int": [1, 3], "step": 0}}, "step must be at least 1"),
        ({"x": {"choice": []}}, "has no values"),
        ({"x": {"choice": [1, 1]}}, "lists a value twice"),
        ({"x": {"choice": [[1]]}}, "values are strings, numbers"),
        ({"x": {"float": [0, 1], "int": [0, 1]}}, "exactly one of float, int or choice"),
        ({"x": {"float": [0, 1], "lg": True}}, "unknown key 'lg'"),
        ({"x": {"float": [0]}}, "takes [low, high]"),
        ({"x": 3}, "is not a range"),
        ({}, "is empty"),
        ([{"name": "x", "parameterType": "float", "feasibleSpace": {}}], "unknown parameterType"),
        ([{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1"}}], "min and max"),
        (
            [{"name": "x", "parameterType": "categorical", "feasibleSpace": {}}],
            "feasibleSpace.list",
        ),
        ("x", "must map parameter names"),
    ],
)
def test_bad_spaces_say_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(SpaceError) as err:
        parse_space(data)
    assert message in err.value.render()


def test_a_space_file_in_either_form(tmp_path: Path) -> None:
    short = tmp_path / "short.yaml"
    short.write_text("C: {float: [0.001, 10], log: true}\nk: {int: [3, 25], step: 2}\n")
    assert load_space_file(short) == {"C": Float(0.001, 10, log=True), "k": Int(3, 25, step=2)}
    katib = tmp_path / "katib.yaml"
    katib.write_text(
        "- name: kernel\n  parameterType: categorical\n  feasibleSpace: {list: [rbf, linear]}\n"
    )
    assert load_space_file(katib) == {"kernel": Choice(["rbf", "linear"])}
    with pytest.raises(SpaceError, match="no search space file"):
        load_space_file(tmp_path / "missing.yaml")


PARAMS = {
    "C": Param("C", "float", 1.0),
    "k": Param("k", "int", 5),
    "kernel": Param("kernel", "str", "rbf"),
    "shrink": Param("shrink", "bool", True),
}


def test_check_space_names_missing_parameters_and_type_mismatches() -> None:
    check_space(
        {"C": Int(1, 3), "k": Int(3, 9), "kernel": Choice(["a"]), "shrink": Choice([True])},
        PARAMS,
        "pipeline 'churn'",
    )  # an int range sets a float; choices of the right type
    with pytest.raises(SpaceError) as err:
        check_space({"kernal": Choice(["a"])}, PARAMS, "pipeline 'churn'")
    assert "pipeline 'churn' has no parameter 'kernal'" in err.value.message
    assert err.value.fix == "did you mean 'kernel'? its parameters: C, k, kernel, shrink"
    with pytest.raises(SpaceError, match=r"'k' is an int \(default 5\), so a float range"):
        check_space({"k": Float(3.5, 25)}, PARAMS, "p")
    with pytest.raises(SpaceError, match="so an int range cannot set it"):
        check_space({"kernel": Int(1, 2)}, PARAMS, "p")
    with pytest.raises(SpaceError, match="'shrink' holds 'yes'"):
        check_space({"shrink": Choice(["yes"])}, PARAMS, "p")


def test_grids_and_their_points() -> None:
    space = {"x": Int(0, 4, step=2), "f": Float(0.0, 0.2, step=0.1), "m": Choice(["a", "b"])}
    assert grid_size(space) == 3 * 3 * 2
    points = grid_points(space, seed=1)
    assert len(points) == 18 and len({tuple(p.items()) for p in points}) == 18
    assert points == grid_points(space, seed=1) != grid_points(space, seed=2)
    with pytest.raises(SpaceError, match="grid search needs a step for the float 'C'"):
        grid_size({"C": Float(0.1, 1)})


def test_algorithms_by_kfnb_and_katib_names() -> None:
    assert algorithm("TPE").name == "tpe" and algorithm("tpe").katib == "tpe"
    assert algorithm("sobol").name == "qmc" and algorithm("qmc").katib == "sobol"
    assert algorithm("multivariate-tpe").name == "tpe"
    with pytest.raises(SpaceError, match="did you mean 'random'"):
        algorithm("randm")
    space = {"x": Float(0, 1), "n": Int(1, 3)}
    kinds = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "qmc": optuna.samplers.QMCSampler,
    }
    for name, kind in kinds.items():
        assert isinstance(sampler(name, space, seed=0), kind)
    with pytest.raises(SpaceError, match="CMA-ES searches numbers; 'm' is a choice"):
        sampler("cmaes", {"m": Choice(["a", "b"])}, seed=0)
    assert pruning("median") == Median() and pruning(None) is None
    assert pruning({"name": "medianstop", "startup_trials": 2}) == Median(2, 0)
    with pytest.raises(SpaceError, match="unknown early stopping"):
        pruning("hyperband")


def test_a_study_spec_checks_and_round_trips() -> None:
    spec = StudySpec(
        space={"x": Int(0, 3)},
        objective="acc",
        direction="maximize",
        algorithm="sobol",
        prune=Median(),
        initial=[{"x": 1}],
    ).check()
    assert spec.algorithm == "qmc"
    assert StudySpec.from_dict(spec.to_dict()) == spec
    for bad, message in [
        ({"direction": "up"}, "direction must be minimize or maximize"),
        ({"trials": 0}, "trials must be a positive integer"),
        ({"parallel": True}, "parallel must be a positive integer"),
        ({"objective": ""}, "needs an objective"),
        ({"initial": [{"y": 1}]}, "name 'y', which the search space does not tune"),
    ]:
        with pytest.raises(SpaceError, match=message):
            StudySpec(**{"space": {"x": Int(0, 3)}, "objective": "acc", **bad}).check()


def test_kales_katib_metadata_is_read(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kubeflow_notebook"] = {
        "katib_run": True,
        "katib_metadata": {
            "parameters": KATIB[:2],
            "objective": {"objectiveMetricName": "loss", "type": "minimize", "goal": 0.1},
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 12,
            "parallelTrialCount": 3,
            "maxFailedTrialCount": 2,
        },
    }
    path = tmp_path / "kale.ipynb"
    nbformat.write(nb, path)
    got = from_metadata(katib_metadata(path), str(path))
    assert got == {
        "space": {"lr": Float(0.001, 0.1, log=True), "layers": Int(1, 5)},
        "objective": "loss",
        "direction": "minimize",
        "algorithm": "random",
        "trials": 12,
        "parallel": 3,
        "max_failed": 2,
    }
    nbformat.write(nbformat.v4.new_notebook(), path)
    assert katib_metadata(path) == {}


def test_without_optuna_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from kfnb.errors import MissingDependencyError
    from kfnb.tuning.algorithms import optuna_module

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(MissingDependencyError) as err:
        optuna_module()
    assert err.value.fix == "pip install 'kfnb[tune]'"
