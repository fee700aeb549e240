"""Notebook -> pipeline IR: sections, Kale compatibility, settings and validation errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_markdown_cell as md

from kfnb import Pipeline
from kfnb.errors import KfnbError, NotebookError, PipelineError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Nb = Callable[..., Any]


def test_churn_parses_into_the_dag_kale_builds() -> None:
    p = Pipeline.from_notebook(EXAMPLES / "churn.ipynb")
    assert p.name == "churn"
    assert p.experiment == "churn-dev"
    assert p.image == "python:3.11-slim"
    assert p.step_names == [
        "load_data",
        "prepare",
        "train_logreg",
        "train_knn",
        "train_baseline",
        "compare",
    ]
    assert {s.name: s.after for s in p.steps} == {
        "load_data": [],
        "prepare": ["load_data"],
        "train_logreg": ["prepare"],
        "train_knn": ["prepare"],
        "train_baseline": ["prepare"],
        "compare": ["train_logreg", "train_knn", "train_baseline"],
    }
    assert list(p.parameters) == [
        "n_customers",
        "test_fraction",
        "seed",
        "epochs",
        "learning_rate",
        "k_neighbours",
    ]
    assert p.parameters["test_fraction"].type == "float"
    assert p.parameters["seed"].default == 7
    # the prelude: imports then functions
    assert [c.index for c in p.prelude] == [1, 3]
    assert p.prelude_names >= {"np", "pd", "sigmoid", "accuracy"}
    # untagged continuation cells belong to the step above; the skip cell is left out
    assert [c.index for c in p.step("load_data").cells] == [5, 6]
    assert [c.index for c in p.step("prepare").cells] == [9, 10]
    assert 7 not in [c.index for s in p.steps for c in s.cells]
    # variable flow
    assert p.step("prepare").inputs == {"customers": "load_data"}
    assert p.step("load_data").outputs == ["customers"]
    assert p.step("train_logreg").inputs == {
        v: "prepare" for v in ["X_test", "X_train", "y_test", "y_train"]
    }
    assert p.step("compare").inputs == {
        "acc_baseline": "train_baseline",
        "acc_knn": "train_knn",
        "acc_logreg": "train_logreg",
    }
    assert [(m.name, m.step) for m in p.metrics] == [
        ("best_accuracy", "compare"),
        ("acc_logreg", "train_logreg"),
        ("acc_knn", "train_knn"),
    ]
    # resources and steps_defaults
    assert p.step("train_logreg").resources == {"memory": "1Gi"}
    assert p.step("train_knn").resources == {"cpu": "1"}
    assert all(s.labels == {"team": "growth"} for s in p.steps)
    assert all(s.image == "python:3.11-slim" for s in p.steps)


def test_magics_notebook_parses_like_tags() -> None:
    p = Pipeline.from_notebook(EXAMPLES / "sales_forecast.ipynb")
    assert p.name == "sales-forecast"
    assert p.step_names == ["load", "features", "naive", "seasonal", "report"]
    assert p.step("features").after == ["load"]
    assert p.step("features").inputs == {"sales": "load"}
    assert set(p.step("features").outputs) == {"train", "test"}
    assert p.step("naive").after == ["features"]
    assert p.step("naive").resources == {"memory": "512Mi"}
    assert p.step("naive").retries == 1
    assert p.step("seasonal").timeout == 600.0
    assert p.step("seasonal").labels == {"owner": "forecasting"}
    assert p.step("report").inputs == {
        "mae_naive": "naive",
        "mae_seasonal": "seasonal",
        "seasonal": "seasonal",
    }
    assert list(p.parameters) == ["horizon", "window", "seed"]
    # the %%step header is not part of the code a step runs
    assert not any("%%step" in c.source for s in p.steps for c in s.cells)
    assert [(m.name, m.step) for m in p.metrics] == [
        ("mae_naive", "naive"),
        ("mae_seasonal", "seasonal"),
    ]


def test_no_step_tags_is_one_step_pipeline() -> None:
    path = Path(__file__).resolve().parents[1] / "fixtures" / "plain_papermill.ipynb"
    p = Pipeline.from_notebook(path)
    assert p.step_names == ["plain_papermill"]
    assert [c.index for c in p.steps[0].cells] == [2, 3]
    assert p.parameters["rows"].default == 5


def test_papermill_parameters_cell_does_not_swallow_following_cells(nb: Nb) -> None:
    p = Pipeline.from_nb(nb(("step:a", "x = 1"), ("parameters", "n = 2"), "y = x * n"))
    assert [c.index for c in p.step("a").cells] == [0, 2]
    assert list(p.parameters) == ["n"]


def test_kale_pipeline_parameters_continue_into_untagged_cells(nb: Nb) -> None:
    p = Pipeline.from_nb(nb(("pipeline-parameters", "a = 1"), "b = 'x'", ("step:s", "c = a")))
    assert list(p.parameters) == ["a", "b"]


def test_untagged_after_skip_joins_step_before_skip(nb: Nb) -> None:
    p = Pipeline.from_nb(
        nb(("step:a", "x = 1"), ("skip", "x.bit_length()"), "y = x + 1", ("step:b", "z = y"))
    )
    assert [c.index for c in p.step("a").cells] == [0, 2]
    assert p.step("b").inputs == {"y": "a"}


def test_leading_untagged_cells_join_the_first_step(nb: Nb) -> None:
    p = Pipeline.from_nb(
        nb("import math", md("# t"), ("imports", "import os"), ("step:a", "x = math.pi"))
    )
    assert [c.index for c in p.step("a").cells] == [0, 3]


def test_markdown_and_raw_cells_are_ignored(nb: Nb) -> None:
    from nbformat.v4 import new_raw_cell

    p = Pipeline.from_nb(
        nb(md("step:a looks like a tag"), new_raw_cell("x = undefined"), ("step:a", "x = 1"))
    )
    assert [c.index for c in p.step("a").cells] == [2]


def test_contiguous_cells_with_same_step_tag_form_one_step(nb: Nb) -> None:
    p = Pipeline.from_nb(nb(("step:a", "x = 1"), ("step:a", "y = 2"), ("step:b", "z = x + y")))
    assert [c.index for c in p.step("a").cells] == [0, 1]


def test_settings_on_continuation_cells_apply_to_the_step(nb: Nb) -> None:
    p = Pipeline.from_nb(
        nb(("step:a", "x = 1"), ("step:b", "y = 1"), (["prev:a", "limit:gpu:1"], "z = 2"))
    )
    assert p.step("b").after == ["a"]
    assert p.step("b").resources == {"nvidia.com/gpu": "1"}
    assert p.step("b").gpus == 1


def test_kfnb_metadata_wins_over_kale(nb: Nb) -> None:
    p = Pipeline.from_nb(
        nb(
            ("step:a", "x = 1"),
            metadata={
                "kubeflow_notebook": {
                    "pipeline_name": "kale",
                    "experiment": {"name": "exp-kale"},
                    "steps_defaults": ["limit:memory:1Gi", "label:a:1"],
                },
                "kfnb": {
                    "name": "mine",
                    "steps_defaults": ["label:a:2", "retries:2", "timeout:5m"],
                },
            },
        )
    )
    assert (p.name, p.experiment) == ("mine", "exp-kale")
    step = p.step("a")
    assert (step.resources, step.labels, step.retries, step.timeout) == (
        {"memory": "1Gi"},
        {"a": "2"},
        2,
        300.0,
    )


def test_step_settings_override_defaults(nb: Nb) -> None:
    p = Pipeline.from_nb(
        nb(
            (["step:a", "limit:memory:8Gi"], "x = 1"),
            metadata={"kfnb": {"steps_defaults": ["limit:memory:1Gi"]}},
        )
    )
    assert p.step("a").resources == {"memory": "8Gi"}


def test_parameters_types(nb: Nb) -> None:
    p = Pipeline.from_nb(
        nb(
            (
                "pipeline-parameters",
                """
# a comment
lr = 0.1
epochs = 10
name = "run"
flag = False
layers = [64, 32]
opts = {"a": 1}
nothing = None
ratio: float = 1
neg = -3
""",
            ),
            ("step:a", "x = lr"),
        )
    )
    types = {n: (q.type, q.default) for n, q in p.parameters.items()}
    assert types == {
        "lr": ("float", 0.1),
        "epochs": ("int", 10),
        "name": ("str", "run"),
        "flag": ("bool", False),
        "layers": ("list", [64, 32]),
        "opts": ("dict", {"a": 1}),
        "nothing": ("any", None),
        "ratio": ("float", 1),
        "neg": ("int", -3),
    }


def test_parameters_pass_as_parameters_not_data(nb: Nb) -> None:
    p = Pipeline.from_nb(
        nb(("pipeline-parameters", "seed = 1"), ("step:a", "x = seed"), ("step:b", "y = seed + x"))
    )
    assert p.step("b").inputs == {"x": "a"}
    assert p.step("a").outputs == ["x"]


ERRORS = [
    pytest.param(
        [("step:a", "x = 1"), ("step:b", "y = 2"), ("step:a", "z = 3")],
        2,
        "step 'a' is already defined at cell 0",
        "give this cell its own step name",
        id="duplicate-step",
    ),
    pytest.param(
        [(["step:b", "prev:a"], "x = 1")],
        0,
        "prev:a names no step defined above",
        "known steps: none yet",
        id="unknown-prev",
    ),
    pytest.param(
        [("step:load", "x = 1"), (["step:b", "prev:lod"], "y = 1")],
        1,
        "prev:lod names no step",
        "did you mean prev:load?",
        id="prev-typo",
    ),
    pytest.param(
        [(["step:b", "prev:c"], "x = 1"), ("step:c", "y = 1")],
        0,
        "prev:c names no step defined above",
        "only run after steps above",
        id="prev-forward",
    ),
    pytest.param(
        [(["step:a", "prev:a"], "x = 1")], 0, "lists itself", "remove prev:a", id="prev-self"
    ),
    pytest.param(
        [("step:1st", "x = 1")],
        0,
        "invalid step name '1st'",
        "rename it to 'step_1st'",
        id="invalid-name",
    ),
    pytest.param(
        [("step:my step", "x = 1")],
        0,
        "invalid step name 'my step'",
        "rename it to 'my_step'",
        id="invalid-name-space",
    ),
    pytest.param(
        [("step:metrics", "x = 1")], 0, "'metrics' is reserved", "metrics_step", id="reserved-name"
    ),
    pytest.param(
        [("pipeline-parameters", "a = 1\nb = a + 1"), ("step:s", "x = 1")],
        0,
        "line 2: the value of 'b' is not a literal",
        "literal default",
        id="params-not-literal",
    ),
    pytest.param(
        [("pipeline-parameters", "a = 1\nprint(a)"), ("step:s", "x = 1")],
        0,
        "line 2: a parameters cell may only assign literal values",
        "learning_rate = 0.01",
        id="params-not-assignment",
    ),
    pytest.param(
        [("pipeline-parameters", "x: int = 'a'"), ("step:s", "y = 1")],
        0,
        "not a int",
        "match the annotation",
        id="params-annotation",
    ),
    pytest.param(
        [("step:s", "y = 1"), ("pipeline-metrics", "print(y)\ny")],
        1,
        "line 2: a pipeline-metrics cell may only hold print(variable)",
        "print(accuracy)",
        id="metrics-not-print",
    ),
    pytest.param(
        [("step:s", "y = 1"), ("pipeline-metrics", "print(y)"), ("step:t", "z = 1")],
        2,
        "after the pipeline-metrics cell",
        "move the pipeline-metrics cell to the end",
        id="metrics-not-last",
    ),
    pytest.param(
        [("setp:a", "x = 1")], 0, "unknown tag 'setp:a'", "did you mean 'step:a'?", id="tag-typo"
    ),
    pytest.param(
        [("step:a", "x = 1"), ("step:b", "y = z + 1")],
        1,
        "step 'b' reads variable 'z', which no upstream step defines",
        "define 'z' in an earlier step",
        id="undefined-variable",
    ),
    pytest.param(
        [("step:a", "x = y"), ("step:b", "y = 1")],
        0,
        "step 'a' reads variable 'y'",
        "defined by step 'b' (cell 1), which comes after",
        id="variable-defined-later",
    ),
    pytest.param(
        [("step:a", "x = 1\ndel x"), ("step:b", "y = x")],
        1,
        "step 'b' reads 'x', but step 'a' deletes it",
        "remove the `del x`",
        id="variable-deleted",
    ),
    pytest.param(
        [("step:a", "x = (1,")], 0, "line 1", "correct the Python syntax", id="syntax-error"
    ),
    pytest.param(
        [("imports", "import numpy as np\nn = len(data)"), ("step:a", "data = [1]")],
        0,
        "they use 'data', which only a step defines",
        "move that code into a step",
        id="prelude-uses-step-variable",
    ),
    pytest.param(
        [("step:a", "%%step b\nx = 1")],
        0,
        "tags say step:a but its %%step line says step:b",
        "keep one of them",
        id="tag-magic-conflict",
    ),
    pytest.param(
        [("prev:a", "x = 1")],
        0,
        "tags need a step",
        "add a step:NAME tag",
        id="settings-without-step",
    ),
]


@pytest.mark.parametrize(("cells", "index", "message", "fix"), ERRORS)
def test_validation_errors_name_cell_and_fix(
    nb: Nb, cells: list[Any], index: int, message: str, fix: str
) -> None:
    notebook = nb(*cells)
    with pytest.raises(NotebookError) as err:
        Pipeline.from_nb(notebook, "nb.ipynb")
    e = err.value
    assert e.cell_index == index, str(e)
    assert message in str(e)
    assert fix in (e.fix or ""), str(e)
    assert str(e).startswith(f"nb.ipynb, cell {index} (")


def test_metric_not_defined(nb: Nb) -> None:
    with pytest.raises(
        PipelineError,
        match=r"metric 'acc' is not defined by any step.*"
        "did you mean 'accu'",
    ):
        Pipeline.from_nb(nb(("step:a", "accu = 1"), ("pipeline-metrics", "print(acc)")))


def test_not_a_python_notebook(nb: Nb) -> None:
    notebook = nb(("step:a", "x <- 1"))
    notebook.metadata.kernelspec = {"name": "ir", "language": "R", "display_name": "R"}
    with pytest.raises(NotebookError, match="kernel language is 'R'"):
        Pipeline.from_nb(notebook)


def test_missing_and_corrupt_notebook_files(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="no notebook at"):
        Pipeline.from_notebook(tmp_path / "missing.ipynb")
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(NotebookError, match="is not a readable notebook"):
        Pipeline.from_notebook(bad)


def test_errors_share_one_root() -> None:
    assert issubclass(NotebookError, KfnbError) and issubclass(PipelineError, KfnbError)


def test_line_magics_and_shell_escapes_do_not_break_parsing(nb: Nb) -> None:
    p = Pipeline.from_nb(
        nb(
            ("step:a", "%matplotlib inline\n!pip --version\nfiles = !ls\nx = 1"),
            ("step:b", "%time y = x + len(files)\nz = y"),
        )
    )
    assert p.step("b").inputs == {"files": "a", "x": "a"}


def test_limits_apply_to_the_single_step_of_an_untagged_notebook(nb: Nb) -> None:
    p = Pipeline.from_nb(nb("x = 1", ("limit:gpu:1", "y = x")), "train.ipynb")
    assert p.step_names == ["train"]
    assert p.step("train").resources == {"nvidia.com/gpu": "1"}


def test_old_nbformat_3_notebooks_are_converted(tmp_path: Path) -> None:
    import nbformat
    from nbformat import v3

    old = v3.new_notebook(
        worksheets=[
            v3.new_worksheet(
                cells=[
                    v3.new_code_cell(input="x = 1", metadata={"tags": ["step:a"]}),
                    v3.new_code_cell(input="y = x + 1", metadata={"tags": ["step:b"]}),
                ]
            )
        ]
    )
    path = tmp_path / "old.ipynb"
    path.write_text(nbformat.writes(old, version=3))
    p = Pipeline.from_notebook(path)
    assert p.step("b").inputs == {"x": "a"}


# -- env, node selectors, tolerations ------------------------------------------------------------
def test_env_node_selectors_and_tolerations_reach_the_step(nb: Nb) -> None:
    from kfnb.dag import Toleration

    p = Pipeline.from_nb(
        nb(
            (
                [
                    "step:a",
                    "env:GREETING:hello",
                    "node-selector:pool:gpu",
                    "toleration:nvidia.com/gpu=present:NoSchedule",
                ],
                "x = 1",
            ),
            (["env:URL:http://h:1", "toleration:spot"], "y = x"),  # a continuation cell adds to a
            "%%step b --env GREETING=bye --node-selector pool=cpu --toleration spot:NoExecute\n"
            "z = y",
            ("step:c", "w = z"),
        )
    )
    a, b, c = p.step("a"), p.step("b"), p.step("c")
    assert a.env == {"GREETING": "hello", "URL": "http://h:1"}
    assert a.node_selector == {"pool": "gpu"}
    assert a.tolerations == [
        Toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule"),
        Toleration("spot", "Exists"),
    ]
    assert (b.env, b.node_selector, b.tolerations) == (
        {"GREETING": "bye"},
        {"pool": "cpu"},
        [Toleration("spot", "Exists", None, "NoExecute")],
    )
    assert (c.env, c.node_selector, c.tolerations) == ({}, {}, [])


def test_env_node_selectors_and_tolerations_merge_over_steps_defaults(nb: Nb) -> None:
    from kfnb.dag import Toleration

    p = Pipeline.from_nb(
        nb(
            (
                [
                    "step:a",
                    "env:B:own",
                    "env:C:own",
                    "node-selector:pool:gpu",
                    "toleration:spot:NoSchedule",
                    "toleration:gpu:NoSchedule",
                ],
                "x = 1",
            ),
            ("step:b", "y = 1"),
            metadata={
                "kubeflow_notebook": {
                    "steps_defaults": ["env:A:kale", "env:B:kale", "toleration:kale"]
                },
                "kfnb": {
                    "steps_defaults": [
                        "env:B:kfnb",
                        "node-selector:pool:cpu",
                        "node-selector:zone:eu",
                        "toleration:spot:NoSchedule",
                    ]
                },
            },
        )
    )
    a, b = p.step("a"), p.step("b")
    assert a.env == {"A": "kale", "B": "own", "C": "own"}  # key by key, the step's own wins
    assert a.node_selector == {"pool": "gpu", "zone": "eu"}
    assert a.tolerations == [
        Toleration("kale", "Exists"),  # defaults first, no duplicates
        Toleration("spot", "Exists", None, "NoSchedule"),
        Toleration("gpu", "Exists", None, "NoSchedule"),
    ]
    assert b.env == {"A": "kale", "B": "kfnb"}
    assert b.node_selector == {"pool": "cpu", "zone": "eu"}
    assert b.tolerations == [
        Toleration("kale", "Exists"),
        Toleration("spot", "Exists", None, "NoSchedule"),
    ]


def test_steps_defaults_object_form_takes_env_node_selector_and_tolerations(nb: Nb) -> None:
    from kfnb.dag import Toleration

    p = Pipeline.from_nb(
        nb(
            ("step:a", "x = 1"),
            metadata={
                "kfnb": {
                    "steps_defaults": {
                        "labels": {"team": "ml"},
                        "env": {"LOG_LEVEL": "debug"},
                        "node_selector": {"kubernetes.io/arch": "amd64"},
                        "tolerations": ["nvidia.com/gpu=present:NoSchedule", "spot"],
                    }
                }
            },
        )
    )
    a = p.step("a")
    assert (a.labels, a.env, a.node_selector) == (
        {"team": "ml"},
        {"LOG_LEVEL": "debug"},
        {"kubernetes.io/arch": "amd64"},
    )
    assert a.tolerations == [
        Toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule"),
        Toleration("spot", "Exists"),
    ]


@pytest.mark.parametrize(
    ("defaults", "message", "fix"),
    [
        (
            ["env:bad-name:1"],
            "kfnb.steps_defaults: 'bad-name' in tag 'env:bad-name:1' is not an "
            "environment variable name",
            "write env:bad_name:1",
        ),
        (
            ["toleration:k:NoSchedul"],
            "kfnb.steps_defaults: 'NoSchedul' in tag "
            "'toleration:k:NoSchedul' is not a taint effect",
            "did you mean 'toleration:k:NoSchedule'?",
        ),
        ({"tolerations": "spot"}, "tolerations must be a list of strings", '"tolerations": ['),
        (
            {"tolerations": [{"key": "spot"}]},
            "tolerations must be a list of strings",
            "tolerations",
        ),
        (
            {"env": {"1X": "y"}},
            "'1X' in tag 'env:1X:y' is not an environment variable name",
            "write env:_1X:y",
        ),
    ],
)
def test_bad_env_and_tolerations_in_steps_defaults(
    nb: Nb, defaults: Any, message: str, fix: str
) -> None:
    with pytest.raises(NotebookError) as err:
        Pipeline.from_nb(nb(("step:a", "x = 1"), metadata={"kfnb": {"steps_defaults": defaults}}))
    assert message in str(err.value)
    assert fix in (err.value.fix or "")


def test_env_node_selector_and_toleration_errors_name_the_cell(nb: Nb) -> None:
    with pytest.raises(NotebookError) as err:
        Pipeline.from_nb(
            nb(("step:a", "x = 1"), (["step:b", "toleration:gpu:noschedule"], "y = x"))
        )
    assert err.value.cell_index == 1
    assert err.value.fix == "did you mean 'toleration:gpu:NoSchedule'?"
    with pytest.raises(NotebookError, match="tags need a step"):
        Pipeline.from_nb(nb(("env:A:1", "x = 1"), ("step:a", "y = x")))


def test_describe_shows_env_node_selectors_and_tolerations(nb: Nb) -> None:
    from kfnb.cli import render

    p = Pipeline.from_nb(
        nb(
            (
                [
                    "step:a",
                    "env:GREETING:hello",
                    "node-selector:pool:gpu",
                    "toleration:nvidia.com/gpu=present:NoSchedule",
                ],
                "x = 1",
            ),
            (["step:b", "toleration:gpu=yes"], "y = x"),
            metadata={"kfnb": {"steps_defaults": ["toleration:spot:NoExecute"]}},
        )
    )
    text = render(p)
    assert "Every step: toleration spot:NoExecute" in text
    assert (
        "      env GREETING=hello  node-selector pool=gpu  "
        "toleration nvidia.com/gpu=present:NoSchedule"
    ) in text
    assert "      toleration gpu=yes\n" in text
    assert p.to_dict()["steps"][0]["tolerations"] == [
        {"key": "spot", "operator": "Exists", "effect": "NoExecute"},
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
    ]


def test_cpythons_spurious_ast_depth_error_is_tried_again(
    nb: Nb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPython's AST constructor shares one depth counter between threads: another thread
    building an AST meanwhile makes ``ast.parse`` of good code raise ``SystemError: AST
    constructor recursion depth mismatch`` (python/cpython#106905; it failed a CI run here).
    The parser tries again; an error that stays is still raised."""
    import ast

    import kfnb.notebook.ipython as ipython

    spurious = SystemError("AST constructor recursion depth mismatch (before=141, after=42)")
    failures = {"left": 2}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise spurious
        return ast.parse(*args, **kwargs)

    class Ast:  # the ast module as kfnb's parser sees it; pytest's own parsing is untouched
        def __init__(self, parse: Callable[..., Any]) -> None:
            self.parse = parse

        def __getattr__(self, name: str) -> Any:
            return getattr(ast, name)

    monkeypatch.setattr(ipython, "ast", Ast(flaky))
    p = Pipeline.from_nb(nb(("step:a", "x = 1"), ("step:b", "y = x + 1")), "t.ipynb")
    assert p.step("b").inputs == {"x": "a"}
    assert failures["left"] == 0

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise spurious

    monkeypatch.setattr(ipython, "ast", Ast(broken))
    with pytest.raises(SystemError, match="recursion depth mismatch"):
        Pipeline.from_nb(nb(("step:a", "x = 1")), "t.ipynb")
