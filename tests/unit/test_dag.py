"""The pipeline IR built by hand: linking variable flow, validation, order."""

from __future__ import annotations

from typing import Any

import pytest

from kfnb.dag import Metric, Param, Pipeline, Step, sanitize_name
from kfnb.errors import NotebookError, PipelineError
from kfnb.notebook.names import Names


def f(reads: str = "", writes: str = "", **kw: str) -> Names:
    """Analysis facts written by hand: ``f("a b", "c", mutates="a")``."""

    def s(text: str) -> frozenset[str]:
        return frozenset(text.split())

    imports = dict(item.split("=") for item in kw.pop("imports", "").split(";") if item)
    return Names(
        reads=s(reads), writes=s(writes), imports=imports, **{k: s(v) for k, v in kw.items()}
    )


def pipe(
    *steps: tuple[str, Names],
    after: dict[str, list[str]] | None = None,
    params: tuple[str, ...] = (),
) -> Pipeline:
    return Pipeline(
        name="p",
        steps=[Step(n, facts=fx, explicit_after=(after or {}).get(n, [])) for n, fx in steps],
        parameters={n: Param(n, "int", 0) for n in params},
    )


def test_latest_writer_provides() -> None:
    p = pipe(("a", f(writes="x")), ("b", f(reads="x", writes="x")), ("c", f(reads="x"))).link()
    assert p.step("b").inputs == {"x": "a"}
    assert p.step("c").inputs == {"x": "b"}
    assert p.step("c").after == ["b"]
    assert p.step("a").outputs == ["x"] and p.step("b").outputs == ["x"]


def test_mutation_makes_a_step_the_provider() -> None:
    p = pipe(("a", f(writes="df")), ("b", f(reads="df", mutates="df")), ("c", f(reads="df"))).link()
    assert p.step("c").inputs == {"df": "b"}


def test_parallel_readers_stay_parallel() -> None:
    p = pipe(
        ("prep", f(writes="X y")),
        ("m1", f(reads="X y", writes="s1")),
        ("m2", f(reads="X y", writes="s2")),
        ("cmp", f(reads="s1 s2")),
    ).link()
    assert p.step("m1").after == ["prep"] and p.step("m2").after == ["prep"]
    assert p.step("cmp").after == ["m1", "m2"]


def test_explicit_edges_are_kept_besides_data_edges() -> None:
    p = pipe(
        ("a", f(writes="x")), ("b", f(writes="y")), ("c", f(reads="x")), after={"c": ["b"]}
    ).link()
    assert p.step("c").after == ["a", "b"]
    assert p.edges() == [("a", "c"), ("b", "c")]


def test_imports_are_reemitted_not_passed() -> None:
    p = pipe(("a", f(writes="np", imports="np=import numpy as np")), ("b", f(reads="np"))).link()
    assert p.step("b").imports == {"np": "import numpy as np"}
    assert p.step("b").inputs == {} and p.step("b").after == []


def test_parameters_prelude_and_builtins_need_no_provider() -> None:
    p = pipe(("a", f(reads="seed helper len")), params=("seed",))
    p.prelude_facts = f(writes="helper")
    p.link(builtins={"len"})
    assert p.step("a").inputs == {}


def test_in_place_change_of_a_module_does_not_make_a_provider() -> None:
    # `np.append(a, 1)` looks like an in-place change of `np`; modules never travel.
    p = pipe(
        ("a", f(writes="np x", imports="np=import numpy as np")),
        ("b", f(reads="np x", mutates="np")),
        ("c", f(reads="np")),
    )
    p.link()
    assert p.step("c").imports == {"np": "import numpy as np"}
    assert p.step("c").after == []
    q = pipe(("b", f(reads="np", mutates="np")), ("c", f(reads="np")))
    q.prelude_facts = f(writes="np", imports="np=import numpy as np")
    q.link()
    assert q.step("c").inputs == {} and q.step("c").after == []


def test_mutation_of_a_parameter_flows() -> None:
    p = pipe(
        ("a", f(reads="layers", mutates="layers")), ("b", f(reads="layers")), params=("layers",)
    ).link()
    assert p.step("b").inputs == {"layers": "a"}


def test_rebound_builtin_flows() -> None:
    p = pipe(("a", f(writes="input")), ("b", f(builtin_reads="input"))).link()
    assert p.step("b").inputs == {"input": "a"}
    q = pipe(("a", f(writes="x")), ("b", f(builtin_reads="len"))).link(builtins={"len"})
    assert q.step("b").inputs == {}


def test_conditional_provider_hands_on_the_upstream_value() -> None:
    # b binds x only on some paths: c must get b's x, and b must receive a's x to hand on.
    p = pipe(
        ("a", f(writes="x")), ("b", f(writes="x", conditional="x")), ("c", f(reads="x"))
    ).link()
    assert p.step("c").inputs == {"x": "b"}
    assert p.step("b").inputs == {"x": "a"}
    assert p.step("b").after == ["a"]


def test_conditional_without_upstream_is_not_an_error() -> None:
    p = pipe(("a", f(reads="x", writes="x", conditional="x"))).link()
    assert p.step("a").inputs == {}


def test_deferred_reads_resolve_when_available() -> None:
    p = pipe(("a", f(writes="scale")), ("b", f(deferred_reads="scale missing", writes="g")))
    p.link()
    assert p.step("b").inputs == {"scale": "a"}


def test_metrics_link_to_latest_writer() -> None:
    p = pipe(("a", f(writes="acc")), ("b", f(reads="acc", writes="acc")))
    p.metrics = [Metric("acc", "")]
    p.link()
    assert p.metrics == [Metric("acc", "b")]
    assert "acc" in p.step("b").outputs


def test_undefined_variable_error() -> None:
    with pytest.raises(NotebookError, match="step 'a' reads variable 'x'"):
        pipe(("a", f(reads="x"))).link()


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([Step("a", after=["b"]), Step("b", after=["a"])], "cycle: a -> b -> a"),
        (
            [Step("a", after=["c"]), Step("b", after=["a"]), Step("c", after=["b"])],
            "cycle: a -> c -> b -> a",
        ),
        ([Step("a", after=["a"])], "depends on itself"),
        ([Step("a"), Step("a")], "duplicate step name 'a'"),
        ([Step("a", after=["bb"]), Step("b")], "runs after 'bb'.*did you mean 'b'"),
        ([Step("bad name")], "invalid step name 'bad name'.*'bad_name'"),
        ([], "has no steps"),
    ],
)
def test_validate(steps: list[Step], message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        Pipeline("p", steps=steps).validate()


def test_cycle_through_explicit_edges_in_link() -> None:
    p = pipe(("a", f(writes="x")), ("b", f(reads="x")), after={"a": ["b"]})
    with pytest.raises(PipelineError, match="cycle"):
        p.link()


def test_toposort_keeps_notebook_order_on_ties() -> None:
    p = Pipeline("p", steps=[Step("z"), Step("y", after=["x"]), Step("x")])
    assert [s.name for s in p.toposort()] == ["z", "x", "y"]
    assert p.downstream("x") == ["y"]


def test_reserved_parameter_prefix() -> None:
    p = pipe(("a", f()), params=("kfnb_data_dir",))
    with pytest.raises(PipelineError, match="reserved prefix"):
        p.link()


def test_unknown_step_lookup() -> None:
    with pytest.raises(PipelineError, match=r"no step 'trian'.*did you mean 'train'"):
        Pipeline("p", steps=[Step("train")]).step("trian")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("my step", "my_step"),
        ("1st", "step_1st"),
        ("imports", "imports_step"),
        ("", "step"),
        ("ok-name", "ok-name"),
    ],
)
def test_sanitize_name(raw: str, clean: str) -> None:
    assert sanitize_name(raw) == clean


def test_to_dict_shape() -> None:
    p = pipe(("a", f(writes="x")), ("b", f(reads="x seed")), params=("seed",)).link()
    d = p.to_dict()
    assert d["parameters"] == {"seed": {"type": "int", "default": 0}}
    assert d["steps"][1]["inputs"] == {"x": "a"}
    assert d["steps"][1]["after"] == ["a"]
    assert {"name", "after", "inputs", "outputs", "resources", "image"} <= set(d["steps"][0])
    assert d["metrics"] == []


def test_env_node_selector_and_tolerations_in_to_dict() -> None:
    from kfnb.dag import Toleration

    step = Step(
        "a",
        env={"GREETING": "hello"},
        node_selector={"kubernetes.io/arch": "amd64"},
        tolerations=[
            Toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule"),
            Toleration("spot", "Exists"),
        ],
    )
    d = step.to_dict()
    assert d["env"] == {"GREETING": "hello"}
    assert d["node_selector"] == {"kubernetes.io/arch": "amd64"}
    assert d["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists"},
    ]
    assert (
        Step("b").to_dict()["env"],
        Step("b").to_dict()["node_selector"],
        Step("b").to_dict()["tolerations"],
    ) == ({}, {}, [])


def hashed(a: dict[str, Any] | None = None, b: dict[str, Any] | None = None) -> dict[str, str]:
    """Hashes of a two-step pipeline; ``a`` and ``b`` are extra settings of each step."""
    from kfnb.dag import Cell
    from kfnb.hashing import step_hashes

    p = Pipeline(
        name="p",
        parameters={"seed": Param("seed", "int", 1)},
        steps=[
            Step(
                "a",
                cells=[Cell(0, "x = seed")],
                facts=f("seed", "x"),
                resources={"memory": "1Gi"},
                image="python:3.11",
                **(a or {}),
            ),
            Step("b", cells=[Cell(1, "y = x + 1")], facts=f("x", "y"), **(b or {})),
        ],
    ).link()
    return step_hashes(p)


# Hashes of these steps as computed before steps had env, node selectors and tolerations: the
# cache keys of existing runs must stay valid.
HASHES_WITHOUT_ENV = {
    "a": "255582ea48f9006e8a76acb5abf576a875e46f0867acdbcf3f2dfd20b4411b38",
    "b": "a956dae82a4a785e5b39a80bbd76654db5f70c828498628734e91454691b544f",
}


def test_hash_of_a_step_without_env_is_unchanged() -> None:
    assert hashed() == HASHES_WITHOUT_ENV
    assert hashed(a={"env": {}}) == HASHES_WITHOUT_ENV


def test_env_enters_the_hash_node_selectors_and_tolerations_do_not() -> None:
    from kfnb.dag import Toleration

    with_env = hashed(a={"env": {"GREETING": "hello"}})
    assert with_env["a"] != HASHES_WITHOUT_ENV["a"]
    assert with_env["b"] != HASHES_WITHOUT_ENV["b"]  # downstream of a changed step
    other = hashed(a={"env": {"GREETING": "bye"}})
    assert other["a"] not in (with_env["a"], HASHES_WITHOUT_ENV["a"])
    assert hashed(a={"env": {"A": "1", "B": "2"}}) == hashed(a={"env": {"B": "2", "A": "1"}})
    only_b = hashed(b={"env": {"GREETING": "hello"}})
    assert only_b["a"] == HASHES_WITHOUT_ENV["a"] and only_b["b"] != HASHES_WITHOUT_ENV["b"]
    placed = hashed(
        a={"node_selector": {"pool": "gpu"}, "tolerations": [Toleration("spot", "Exists")]}
    )
    assert placed == HASHES_WITHOUT_ENV
