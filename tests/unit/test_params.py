"""Parameter values checked against the parameters cell."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kfnb import Pipeline
from kfnb.params import ParameterError, load_params_file, resolve_params

PARAMS = """
lr = 0.1
epochs = 10
name = "run"
flag = False
layers = [64, 32]
opts = {"a": 1}
anything = None
"""


@pytest.fixture
def pipeline(nb: Callable[..., Any]) -> Pipeline:
    return Pipeline.from_nb(nb(("pipeline-parameters", PARAMS), ("step:a", "x = lr")))


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("lr", "0.5", 0.5),
        ("lr", "1", 1.0),
        ("epochs", "3", 3),
        ("name", "007", "007"),
        ("flag", "true", True),
        ("flag", "No", False),
        ("layers", "[1, 2]", [1, 2]),
        ("opts", '{"b": 2}', {"b": 2}),
        ("anything", "3", 3),
        ("anything", "abc", "abc"),
    ],
)
def test_strings_are_converted_to_the_declared_type(
    pipeline: Pipeline, name: str, text: str, value: Any
) -> None:
    got = resolve_params(pipeline, strings=[(name, text)])[name]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "epochs",
            "ten",
            "parameter 'epochs' is an int (default 10); 'ten' is not an int. "
            "Fix: pass e.g. -p epochs 7",
        ),
        ("lr", "fast", "'fast' is not a float"),
        ("flag", "maybe", "'maybe' is not a bool"),
        ("layers", "{a: 1}", "parameter 'layers' is a list"),
        ("epochs", "1.5", "'1.5' is not an int"),
    ],
)
def test_bad_strings_name_the_parameter_and_the_value(
    pipeline: Pipeline, name: str, text: str, message: str
) -> None:
    with pytest.raises(ParameterError) as err:
        resolve_params(pipeline, strings=[(name, text)])
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("lr", 1, True),
        ("lr", "0.1", False),
        ("epochs", 2.0, False),
        ("epochs", True, False),
        ("flag", 1, False),
        ("name", 3, False),
        ("layers", (1, 2), True),
        ("opts", [], False),
        ("anything", object, True),
    ],
)
def test_typed_values(pipeline: Pipeline, name: str, value: Any, ok: bool) -> None:
    if ok:
        resolve_params(pipeline, {name: value})
    else:
        with pytest.raises(ParameterError, match=f"parameter {name!r} is"):
            resolve_params(pipeline, {name: value})


def test_defaults_and_precedence(pipeline: Pipeline) -> None:
    values = resolve_params(pipeline, {"epochs": 5}, [("epochs", "7")])
    assert values["epochs"] == 7 and values["lr"] == 0.1 and values["layers"] == [64, 32]


def test_unknown_parameter_suggests(pipeline: Pipeline) -> None:
    with pytest.raises(ParameterError, match=r"no parameter 'epoch'. Fix: did you mean 'epochs'"):
        resolve_params(pipeline, {"epoch": 1})


def test_params_file(tmp_path: Path, pipeline: Pipeline) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("lr: 0.2\nlayers: [8]\n")
    assert resolve_params(pipeline, load_params_file(f))["layers"] == [8]
    f.write_text("- 1\n")
    with pytest.raises(ParameterError, match="must hold a mapping"):
        load_params_file(f)
    with pytest.raises(ParameterError, match="no parameters file"):
        load_params_file(tmp_path / "missing.yaml")


NOT_FINITE = "must be a finite number"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("lr", "nan"),
        ("lr", "NaN"),
        ("lr", "inf"),
        ("lr", "Infinity"),
        ("lr", "-inf"),
        ("lr", "1e999"),  # overflows to inf
        ("lr", "-" + "9" * 400 + ".0"),
        ("layers", "[1.0, .nan]"),
        ("opts", '{"a": .inf}'),
        ("anything", ".nan"),
        ("anything", "-.inf"),
    ],
)
def test_strings_that_are_not_finite_numbers_are_refused(
    pipeline: Pipeline, name: str, text: str
) -> None:
    with pytest.raises(ParameterError) as err:
        resolve_params(pipeline, strings=[(name, text)])
    assert err.value.message.startswith(f"parameter {name!r} {NOT_FINITE}")
    assert err.value.fix is not None and "finite number" in err.value.fix


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lr", float("nan")),
        ("lr", float("inf")),
        ("lr", float("-inf")),
        ("lr", 10**400),  # an int too large for a float
        ("layers", [1.0, float("nan")]),
        ("opts", {"a": {"b": float("inf")}}),
        ("anything", float("-inf")),
    ],
)
def test_typed_values_that_are_not_finite_numbers_are_refused(
    pipeline: Pipeline, name: str, value: Any
) -> None:
    with pytest.raises(ParameterError) as err:
        resolve_params(pipeline, {name: value})
    assert err.value.message.startswith(f"parameter {name!r} {NOT_FINITE}")
    assert err.value.fix is not None and "finite number" in err.value.fix


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("lr: .nan\n", "lr"),
        ("lr: .inf\n", "lr"),
        ("lr: -.Inf\n", "lr"),
        ("lr: 1.0e+999\n", "lr"),  # overflows to inf
        ("layers: [.nan]\n", "layers"),
    ],
)
def test_params_files_with_numbers_that_are_not_finite_are_refused(
    tmp_path: Path, pipeline: Pipeline, text: str, name: str
) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ParameterError, match=f"parameter {name!r} {NOT_FINITE}"):
        resolve_params(pipeline, load_params_file(f))


def test_finite_numbers_are_still_taken(pipeline: Pipeline) -> None:
    values = resolve_params(pipeline, {"lr": 10**300}, [("layers", "[1.5e+308, -0.0]")])
    assert values["lr"] == 1e300 and values["layers"] == [1.5e308, -0.0]
    assert resolve_params(pipeline, strings=[("lr", "1e-999")])["lr"] == 0.0  # underflow is fine


def test_errors_carry_the_fix_as_an_attribute(pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(ParameterError) as err:
        resolve_params(pipeline, {"epoch": 1})
    assert (err.value.message, err.value.fix) == (
        f"pipeline {pipeline.name!r} has no parameter 'epoch'",
        "did you mean 'epochs'?",
    )
    with pytest.raises(ParameterError) as err:
        resolve_params(pipeline, strings=[("epochs", "ten")])
    assert "Fix" not in err.value.message and err.value.fix == "pass e.g. -p epochs 7"
    with pytest.raises(ParameterError) as err:
        load_params_file(tmp_path / "missing.yaml")
    assert "Fix" not in err.value.message and err.value.fix == "check the path"
