"""The tag language and the %%step header."""

from __future__ import annotations

import pytest

from kfnb.dag import Toleration
from kfnb.notebook.magic import parse_header, split_header
from kfnb.notebook.tags import Directive, TagError, parse_tags


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["step:train"], Directive(role="step", step="train")),
        (["block:train"], Directive(role="step", step="train")),
        (["block:"], Directive()),  # Kale writes an empty block: for untagged cells
        (["imports"], Directive(role="imports")),
        (["functions"], Directive(role="functions")),
        (["pipeline-parameters"], Directive(role="parameters")),
        (["parameters"], Directive(role="parameters")),
        (["injected-parameters"], Directive(role="parameters")),
        (["pipeline-metrics"], Directive(role="metrics")),
        (["skip"], Directive(role="skip")),
        (["step:b", "prev:a", "prev:c"], Directive(role="step", step="b", prev=["a", "c"])),
        (
            ["step:t", "limit:nvidia.com/gpu:2"],
            Directive(role="step", step="t", resources={"nvidia.com/gpu": "2"}),
        ),
        (
            ["step:t", "limit:gpu:1"],
            Directive(role="step", step="t", resources={"nvidia.com/gpu": "1"}),
        ),
        (
            ["step:t", "limit:memory:4Gi", "limit:cpu:500m"],
            Directive(role="step", step="t", resources={"memory": "4Gi", "cpu": "500m"}),
        ),
        (
            ["step:t", "image:python:3.11-slim"],
            Directive(role="step", step="t", image="python:3.11-slim"),
        ),
        (
            ["step:t", "label:app.kubernetes.io/name:churn"],
            Directive(role="step", step="t", labels={"app.kubernetes.io/name": "churn"}),
        ),
        (
            ["step:t", "annotation:note:a:b"],
            Directive(role="step", step="t", annotations={"note": "a:b"}),
        ),
        (
            ["step:t", "retries:3", "timeout:30m"],
            Directive(role="step", step="t", retries=3, timeout=1800.0),
        ),
        (["step:t", "timeout:90"], Directive(role="step", step="t", timeout=90.0)),
        # other tools' tags are ignored
        (
            [
                "hide-input",
                "remove-cell",
                "thebe-init",
                "raises-exception",
                "nbval-ignore-output",
                "full-width",
                "active-ipynb",
                "test",
                "export",
                "solution",
                "margin",
            ],
            Directive(),
        ),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, list) else "",
)
def test_parse_tags(tags: list[str], expected: Directive) -> None:
    assert parse_tags(tags) == expected


@pytest.mark.parametrize(
    ("tags", "message", "fix"),
    [
        (["setp:train"], "unknown tag 'setp:train'", "did you mean 'step:train'?"),
        (["blok:train"], "unknown tag 'blok:train'", "did you mean 'block:train'?"),
        (["import"], "unknown tag 'import'", "did you mean 'imports'?"),
        (["function"], "unknown tag 'function'", "did you mean 'functions'?"),
        (["pipeline-parameter"], "unknown tag", "did you mean 'pipeline-parameters'?"),
        (["pipeline_metrics"], "unknown tag", "did you mean 'pipeline-metrics'?"),
        (["limits:cpu:1"], "unknown tag", "did you mean 'limit:cpu:1'?"),
        (["step:a", "step:b"], "conflicts with step:a", "keep one"),
        (["imports", "step:b"], "conflicts with 'imports'", "keep one"),
        (["prev:"], "names no step", "prev:STEP_NAME"),
        (["limit:gpu"], "needs a resource and a value", "limit:RESOURCE:VALUE"),
        (["limit:nvidia.com/gpu:0.5"], "whole number", "limit:nvidia.com/gpu:1"),
        (["limit:memory:lots"], "not a Kubernetes quantity", "4Gi"),
        (["limit:Memory:1Gi"], "not a Kubernetes resource name", "cpu, memory"),
        (["label:bad key:v"], "not label:KEY:VALUE", "label:KEY:VALUE"),
        (["retries:many"], "whole number of retries", "retries:2"),
        (["timeout:soon"], "positive duration", "timeout:30m"),
        ([3], "not a string", "remove it"),
    ],
)
def test_bad_tags(tags: list[object], message: str, fix: str) -> None:
    with pytest.raises(TagError) as err:
        parse_tags(tags)
    assert message in err.value.message
    assert fix in (err.value.fix or "")


def test_split_header() -> None:
    assert split_header("%%step a --gpus 1\nx = 1\n") == ("%%step a --gpus 1", "x = 1\n")
    assert split_header("\n  %%step a\nx") == ("%%step a", "x")
    assert split_header("%%time\nx = 1") == (None, "%%time\nx = 1")
    assert split_header("%%stepper a\nx") == (None, "%%stepper a\nx")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("%%step train", Directive(role="step", step="train")),
        (
            "%%step train --after load clean",
            Directive(role="step", step="train", prev=["load", "clean"]),
        ),
        (
            "%%step train --gpus 2 --memory 8Gi --cpu 4 --limit ephemeral-storage=10Gi",
            Directive(
                role="step",
                step="train",
                resources={
                    "nvidia.com/gpu": "2",
                    "memory": "8Gi",
                    "cpu": "4",
                    "ephemeral-storage": "10Gi",
                },
            ),
        ),
        (
            "%%step t --image 'ghcr.io/acme/train:1.2' --label team=ml --annotation a=b=c",
            Directive(
                role="step",
                step="t",
                image="ghcr.io/acme/train:1.2",
                labels={"team": "ml"},
                annotations={"a": "b=c"},
            ),
        ),
        (
            "%%step t --retries 2 --timeout 2h",
            Directive(role="step", step="t", retries=2, timeout=7200.0),
        ),
        ("%%step imports", Directive(role="imports")),
        ("%%step functions", Directive(role="functions")),
        ("%%step parameters", Directive(role="parameters")),
        ("%%step metrics", Directive(role="metrics")),
        ("%%step skip", Directive(role="skip")),
    ],
)
def test_parse_header(line: str, expected: Directive) -> None:
    assert parse_header(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%%step", "the following arguments are required: name"),
        ("%%step a --gpus two", "not a Kubernetes quantity"),
        ("%%step a --bogus", "unrecognized arguments: --bogus"),
        ("%%step a 'unclosed", "No closing quotation"),
        ("%%step imports --gpus 1", "takes no step options"),
        ("%%step a --limit gpu", "needs a resource and a value"),
    ],
)
def test_bad_header(line: str, message: str) -> None:
    with pytest.raises(TagError, match=message):
        parse_header(line)


def test_tags_and_header_merge() -> None:
    tags = parse_tags(["step:a", "limit:memory:1Gi"])
    merged = tags.merge(parse_header("%%step a --gpus 1 --after x"))
    assert merged == Directive(
        role="step", step="a", prev=["x"], resources={"memory": "1Gi", "nvidia.com/gpu": "1"}
    )
    with pytest.raises(TagError, match="tags say step:a but its %%step line says step:b"):
        tags.merge(parse_header("%%step b"))


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["step:t", "cache:off"], Directive(role="step", step="t", cache=False)),
        (["step:t", "cache:on"], Directive(role="step", step="t", cache=True)),
        (["step:t"], Directive(role="step", step="t", cache=None)),  # not said: the default
    ],
)
def test_cache_tags(tags: list[str], expected: Directive) -> None:
    assert parse_tags(tags) == expected


@pytest.mark.parametrize("tag", ["cache:maybe", "cache:", "cache:no"])
def test_bad_cache_tag_names_the_fix(tag: str) -> None:
    with pytest.raises(TagError) as err:
        parse_tags(["step:t", tag])
    assert err.value.message == f"tag {tag!r} must be cache:off or cache:on"
    assert err.value.fix == "write cache:off to always run this step"


def test_cache_off_reaches_the_step_from_a_tag_or_the_notebook_defaults() -> None:
    from nbformat.v4 import new_code_cell, new_notebook

    from kfnb import Pipeline
    from kfnb.errors import NotebookError

    def build_notebook(
        *cells: tuple[list[str] | str, str], metadata: dict[str, object] | None = None
    ) -> object:
        return new_notebook(
            cells=[
                new_code_cell(src, metadata={"tags": [tags] if isinstance(tags, str) else tags})
                for tags, src in cells
            ],
            metadata={
                "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                **(metadata or {}),
            },
        )

    tagged = Pipeline.from_nb(
        build_notebook((["step:a", "cache:off"], "a = 1"), ("step:b", "b = 2"))
    )
    assert {s.name: s.cache for s in tagged.steps} == {"a": False, "b": True}
    defaults = Pipeline.from_nb(
        build_notebook(
            ("step:a", "a = 1"),
            ("step:b", "b = 2"),
            metadata={"kfnb": {"steps_defaults": ["cache:off"]}},
        )
    )
    assert {s.name: s.cache for s in defaults.steps} == {"a": False, "b": False}
    own = Pipeline.from_nb(
        build_notebook(
            (["step:a", "cache:on"], "a = 1"),
            ("step:b", "b = 2"),
            metadata={"kfnb": {"steps_defaults": ["cache:off"]}},
        )
    )
    assert {s.name: s.cache for s in own.steps} == {"a": True, "b": False}  # the cell wins
    with pytest.raises(NotebookError, match="cache:maybe' must be cache:off or cache:on"):
        Pipeline.from_nb(build_notebook((["step:a", "cache:maybe"], "a = 1")))


# -- env, node selectors, tolerations ------------------------------------------------------------
@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (
            ["step:t", "env:GREETING:hello"],
            Directive(role="step", step="t", env={"GREETING": "hello"}),
        ),
        (
            ["step:t", "env:URL:http://host:8080/x"],  # the value may hold ':'
            Directive(role="step", step="t", env={"URL": "http://host:8080/x"}),
        ),
        (
            ["step:t", "env:EMPTY:", "env:_a1:x"],
            Directive(role="step", step="t", env={"EMPTY": "", "_a1": "x"}),
        ),
        (
            ["step:t", "node-selector:kubernetes.io/arch:amd64", "node-selector:pool:gpu"],
            Directive(
                role="step", step="t", node_selector={"kubernetes.io/arch": "amd64", "pool": "gpu"}
            ),
        ),
        (
            ["step:t", "node-selector:zone:"],  # an empty label value is a label value
            Directive(role="step", step="t", node_selector={"zone": ""}),
        ),
        (
            ["step:t", "toleration:nvidia.com/gpu=present:NoSchedule"],
            Directive(
                role="step",
                step="t",
                tolerations=[Toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule")],
            ),
        ),
        (
            ["step:t", "toleration:spot:PreferNoSchedule", "toleration:dedicated"],
            Directive(
                role="step",
                step="t",
                tolerations=[
                    Toleration("spot", "Exists", None, "PreferNoSchedule"),
                    Toleration("dedicated", "Exists"),
                ],
            ),
        ),
        (
            ["step:t", "toleration:team=ml"],  # Equal, any effect
            Directive(role="step", step="t", tolerations=[Toleration("team", "Equal", "ml")]),
        ),
        (
            ["step:t", "toleration:k:NoExecute", "toleration:k:NoExecute"],  # no duplicates
            Directive(
                role="step", step="t", tolerations=[Toleration("k", "Exists", None, "NoExecute")]
            ),
        ),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, list) else "",
)
def test_env_node_selector_and_toleration_tags(tags: list[str], expected: Directive) -> None:
    assert parse_tags(tags) == expected
    assert parse_tags(tags).has_settings


@pytest.mark.parametrize(
    ("tags", "message", "fix"),
    [
        (
            ["env:GREETING"],
            "tag 'env:GREETING' is not env:NAME:VALUE",
            "write env:NAME:VALUE, e.g. env:LOG_LEVEL:debug",
        ),
        (["env::x"], "is not env:NAME:VALUE", "write env:NAME:VALUE"),
        (
            ["env:MY-VAR:1"],
            "'MY-VAR' in tag 'env:MY-VAR:1' is not an environment variable name",
            "write env:MY_VAR:1",
        ),
        (["env:1ST:x"], "is not an environment variable name", "write env:_1ST:x"),
        (
            ["env:KFNB_STEP:x"],
            "KFNB_STEP in tag 'env:KFNB_STEP:x' is set by kfnb",
            "use another name",
        ),
        (["envs:A:b"], "unknown tag 'envs:A:b'", "did you mean 'env:A:b'?"),
        (
            ["node-selector:pool"],
            "is not node-selector:KEY:VALUE with a Kubernetes label key",
            "node-selector:kubernetes.io/arch:amd64",
        ),
        (["node-selector::gpu"], "is not node-selector:KEY:VALUE", "node-selector:KEY:VALUE"),
        (["node-selector:bad key:v"], "with a Kubernetes label key", "node-selector:KEY:VALUE"),
        (
            ["node-selector:pool:a b"],
            "'a b' in tag 'node-selector:pool:a b' is not a Kubernetes label value",
            "at most 63",
        ),
        (["nodeselector:pool:gpu"], "unknown tag", "did you mean 'node-selector:pool:gpu'?"),
        (["node-selecter:pool:gpu"], "unknown tag", "did you mean 'node-selector:pool:gpu'?"),
        (["toleration:"], "tag 'toleration:' names no taint key", "toleration:KEY=VALUE:EFFECT"),
        (["toleration:=v:NoSchedule"], "names no taint key", "toleration:KEY:EFFECT"),
        (
            ["toleration:k=v:noschedule"],
            "'noschedule' in tag 'toleration:k=v:noschedule' is not a taint effect: use "
            "NoSchedule, PreferNoSchedule, NoExecute",
            "did you mean 'toleration:k=v:NoSchedule'?",
        ),
        (
            ["toleration:gpu:NoExecut"],
            "is not a taint effect",
            "did you mean 'toleration:gpu:NoExecute'?",
        ),
        (["toleration:gpu:Bogus"], "is not a taint effect", "toleration:KEY=VALUE:EFFECT"),
        (["toleration:gpu:"], "has ':' but no taint effect", "toleration:KEY:EFFECT"),
        (
            ["toleration:gpu=:NoSchedule"],
            "has '=' but no taint value",
            "write toleration:gpu:EFFECT to tolerate any value",
        ),
        (["toleration:bad key"], "is not a Kubernetes taint key", "toleration:KEY"),
        (["tolerations:gpu"], "unknown tag", "did you mean 'toleration:gpu'?"),
    ],
)
def test_bad_env_node_selector_and_toleration_tags(
    tags: list[object], message: str, fix: str
) -> None:
    with pytest.raises(TagError) as err:
        parse_tags(["step:t", *tags])
    assert message in err.value.message
    assert fix in (err.value.fix or "")


def test_env_node_selector_and_toleration_options() -> None:
    line = (
        "%%step t --env A=b=c --env URL=http://h:1 --env EMPTY= "
        "--node-selector kubernetes.io/arch=amd64 "
        "--toleration nvidia.com/gpu=present:NoSchedule --toleration spot:NoExecute "
        "--toleration dedicated"
    )
    assert parse_header(line) == Directive(
        role="step",
        step="t",
        env={"A": "b=c", "URL": "http://h:1", "EMPTY": ""},
        node_selector={"kubernetes.io/arch": "amd64"},
        tolerations=[
            Toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule"),
            Toleration("spot", "Exists", None, "NoExecute"),
            Toleration("dedicated", "Exists"),
        ],
    )


@pytest.mark.parametrize(
    ("line", "message", "fix"),
    [
        ("%%step t --env A", "'--env A' is not --env NAME=VALUE", "write --env NAME=VALUE"),
        (
            "%%step t --env my.var=1",
            "'my.var' in tag '--env my.var=1' is not an environment variable name",
            "write --env my_var=1",
        ),
        (
            "%%step t --node-selector pool",
            "is not --node-selector KEY=VALUE",
            "--node-selector kubernetes.io/arch=amd64",
        ),
        (
            "%%step t --toleration k:noexecute",
            "is not a taint effect",
            "did you mean '--toleration k:NoExecute'?",
        ),
        ("%%step t --toleration =x", "names no taint key", "write --toleration KEY=VALUE:EFFECT"),
        ("%%step imports --env A=b", "takes no step options", "names a step"),
        ("%%step imports --toleration k", "takes no step options", "names a step"),
    ],
)
def test_bad_env_node_selector_and_toleration_options(line: str, message: str, fix: str) -> None:
    with pytest.raises(TagError) as err:
        parse_header(line)
    assert message in err.value.message
    assert fix in (err.value.fix or "")


def test_tags_and_header_merge_env_node_selectors_and_tolerations() -> None:
    tags = parse_tags(
        ["step:a", "env:A:1", "env:B:1", "node-selector:pool:cpu", "toleration:k:NoSchedule"]
    )
    merged = tags.merge(
        parse_header(
            "%%step a --env B=2 --node-selector pool=gpu "
            "--toleration k:NoSchedule --toleration spot"
        )
    )
    assert merged == Directive(
        role="step",
        step="a",
        env={"A": "1", "B": "2"},
        node_selector={"pool": "gpu"},
        tolerations=[Toleration("k", "Exists", None, "NoSchedule"), Toleration("spot", "Exists")],
    )


@pytest.mark.parametrize(
    ("toleration", "spec", "as_dict"),
    [
        (
            Toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule"),
            "nvidia.com/gpu=present:NoSchedule",
            {
                "key": "nvidia.com/gpu",
                "operator": "Equal",
                "value": "present",
                "effect": "NoSchedule",
            },
        ),
        (
            Toleration("spot", "Exists", None, "PreferNoSchedule"),
            "spot:PreferNoSchedule",
            {"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"},
        ),
        (
            Toleration("dedicated", "Exists"),
            "dedicated",
            {"key": "dedicated", "operator": "Exists"},
        ),
        (
            Toleration("team", "Equal", "ml"),
            "team=ml",
            {"key": "team", "operator": "Equal", "value": "ml"},
        ),
    ],
    ids=str,
)
def test_toleration_to_dict_and_spec_round_trip(
    toleration: Toleration, spec: str, as_dict: dict[str, str]
) -> None:
    assert str(toleration) == spec
    assert toleration.to_dict() == as_dict
    assert parse_tags([f"toleration:{spec}"]).tolerations == [toleration]
    assert parse_header(f"%%step t --toleration {spec}").tolerations == [toleration]
