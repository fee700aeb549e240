"""The parameter sets of a sweep: grid product and union, CSV typing, checks before running."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kfnb.batching.sets import SetError, expand_grid, load_grid_file, make_sets, read_csv, swept
from kfnb.batching.text import markdown, progress_bar, set_line
from kfnb.dag import Pipeline

PARAMS = ("pipeline-parameters", "x = 1\nrate = 0.5\nmode = 'a'\nflag = False")


@pytest.fixture
def pipeline(nb: Callable[..., object]) -> Pipeline:
    return Pipeline.from_nb(nb(PARAMS, ("step:fit", "y = x * rate")))  # type: ignore[arg-type]


def test_a_grid_is_the_product_of_its_lists() -> None:
    sets = expand_grid({"x": [1, 2, 3], "mode": ["a", "b"]})
    assert len(sets) == 6
    assert sets[0] == {"x": 1, "mode": "a"} and sets[-1] == {"x": 3, "mode": "b"}
    assert expand_grid({"x": [1, 2], "rate": 0.1}) == [
        {"x": 1, "rate": 0.1},
        {"x": 2, "rate": 0.1},
    ]


def test_a_list_of_grids_is_the_union_without_repeats() -> None:
    sets = expand_grid([{"x": [1, 2], "mode": ["a"]}, {"x": [2, 9], "mode": ["a", "b"]}])
    assert sets == [
        {"x": 1, "mode": "a"},
        {"x": 2, "mode": "a"},
        {"x": 2, "mode": "b"},
        {"x": 9, "mode": "a"},
        {"x": 9, "mode": "b"},
    ]
    assert swept(sets) == ["x", "mode"]


def test_an_empty_list_in_a_grid_is_an_error() -> None:
    with pytest.raises(SetError, match="no values for 'x'"):
        expand_grid({"x": []})


def test_csv_sets_are_typed_by_the_parameters_cell(pipeline: Pipeline, tmp_path: Path) -> None:
    path = tmp_path / "sets.csv"
    path.write_text("x,rate,mode,flag\n1,0.25,b,true\n7,1,a,no\n3,,c,false\n")
    sets = make_sets(pipeline, sets=path)
    assert sets == [
        {"x": 1, "rate": 0.25, "mode": "b", "flag": True},
        {"x": 7, "rate": 1.0, "mode": "a", "flag": False},
        {"x": 3, "mode": "c", "flag": False},  # an empty cell keeps the default
    ]
    assert type(sets[1]["rate"]) is float and type(sets[0]["x"]) is int


def test_a_csv_cell_of_the_wrong_type_names_its_line(pipeline: Pipeline, tmp_path: Path) -> None:
    path = tmp_path / "sets.csv"
    path.write_text("x,mode\n1,a\nmany,b\n")
    with pytest.raises(SetError, match=r"sets.csv line 3: parameter 'x' is an int"):
        make_sets(pipeline, sets=path)


def test_an_unknown_parameter_names_the_notebooks_parameters(pipeline: Pipeline) -> None:
    with pytest.raises(SetError) as err:
        make_sets(pipeline, grid={"x": [1], "lr": [0.1]})
    assert "'lr'" in str(err.value) and "x, rate, mode, flag" in str(err.value)


def test_a_wrong_type_in_a_set_is_an_error(pipeline: Pipeline) -> None:
    with pytest.raises(SetError, match=r"set 1: parameter 'x' is an int"):
        make_sets(pipeline, sets=[{"x": 1}, {"x": "two"}])


def test_grid_or_sets_and_fixed_not_swept(pipeline: Pipeline) -> None:
    with pytest.raises(SetError, match="a grid or sets"):
        make_sets(pipeline)
    with pytest.raises(SetError, match="a grid or sets"):
        make_sets(pipeline, grid={"x": [1]}, sets=[{"x": 1}])
    with pytest.raises(SetError, match="both swept and fixed"):
        make_sets(pipeline, grid={"x": [1]}, fixed={"x": 2})
    with pytest.raises(SetError, match="no parameter sets"):
        make_sets(pipeline, sets=[])
    # an int is accepted for a float and stored as a float
    assert make_sets(pipeline, grid={"rate": [1]}) == [{"rate": 1.0}]


def test_text_renderings() -> None:
    view = {
        "counts": {"PENDING": 1, "RUNNING": 1, "SUCCEEDED": 1, "FAILED": 1, "CANCELED": 0},
        "sets": [
            {
                "set": 0,
                "params": {"x": 1},
                "status": "SUCCEEDED",
                "metrics": {"score": 2.0},
                "run": "r0",
                "duration": 1.0,
                "error": None,
            },
            {
                "set": 1,
                "params": {"x": 2},
                "status": "FAILED",
                "metrics": {},
                "run": "r1",
                "duration": None,
                "error": "step 'fit' failed: boom",
            },
        ],
    }
    assert progress_bar(view, width=4) == "[##..] 2/4 sets, 1 running, 1 failed"
    assert "score=2" in set_line(view["sets"][0]) and "(1.0s)" in set_line(view["sets"][0])
    assert "failed: step 'fit' failed: boom" in set_line(view["sets"][1])
    md = markdown(view).splitlines()
    assert md[0] == "| set | status | x | score | run |"
    assert md[2] == "| 0 | succeeded | 1 | 2 | r0 |" and md[3] == "| 1 | failed | 2 | - | r1 |"


def test_a_bad_grid_file_is_named_with_its_line_never_echoed(tmp_path: Path) -> None:
    secret = tmp_path / "grid.yaml"
    secret.write_text("lr: [0.1, 0.01]\npassword: 'hunter2\n")  # an unclosed quote on line 2
    with pytest.raises(
        SetError, match=r"grid file .*grid\.yaml', line \d+ is not valid YAML"
    ) as err:
        load_grid_file(secret)
    assert "hunter2" not in str(err.value)


def test_a_sets_file_that_is_no_text_is_refused_by_name(tmp_path: Path, pipeline: Pipeline) -> None:
    binary = tmp_path / "sets.csv"
    binary.write_bytes(b"x,rate\n1,\xff\xfe secret\n")
    with pytest.raises(
        SetError, match=r"sets file .*sets\.csv' is not UTF-8 text \(line 2\)"
    ) as err:
        read_csv(pipeline, binary)
    assert "secret" not in str(err.value)
    with pytest.raises(SetError, match="no sets file at"):
        read_csv(pipeline, tmp_path / "missing.csv")


def test_long_values_are_cut_in_lines_and_tables() -> None:
    row = {"set": 0, "status": "SUCCEEDED", "params": {"x": "a" * 5000}, "metrics": {}}
    line = set_line(row)
    assert len(line) < 200 and "aaa..." in line
