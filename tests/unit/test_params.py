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
