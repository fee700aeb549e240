"""The tag language and the %%step header."""

from __future__ import annotations

import pytest

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
        (["step:t", "limit:nvidia.com/gpu:2"],
         Directive(role="step", step="t", resources={"nvidia.com/gpu": "2"})),
        (["step:t", "limit:gpu:1"], Directive(role="step", step="t",
                                              resources={"nvidia.com/gpu": "1"})),
        (["step:t", "limit:memory:4Gi", "limit:cpu:500m"],
         Directive(role="step", step="t", resources={"memory": "4Gi", "cpu": "500m"})),
        (["step:t", "image:python:3.11-slim"],
         Directive(role="step", step="t", image="python:3.11-slim")),
        (["step:t", "label:app.kubernetes.io/name:churn"],
         Directive(role="step", step="t", labels={"app.kubernetes.io/name": "churn"})),
        (["step:t", "annotation:note:a:b"],
         Directive(role="step", step="t", annotations={"note": "a:b"})),
        (["step:t", "retries:3", "timeout:30m"],
         Directive(role="step", step="t", retries=3, timeout=1800.0)),
        (["step:t", "timeout:90"], Directive(role="step", step="t", timeout=90.0)),
        # other tools' tags are ignored
        (["hide-input", "remove-cell", "thebe-init", "raises-exception", "nbval-ignore-output",
          "full-width", "active-ipynb", "test", "export", "solution", "margin"], Directive()),
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
        ("%%step train --after load clean",
         Directive(role="step", step="train", prev=["load", "clean"])),
        ("%%step train --gpus 2 --memory 8Gi --cpu 4 --limit ephemeral-storage=10Gi",
         Directive(role="step", step="train", resources={
             "nvidia.com/gpu": "2", "memory": "8Gi", "cpu": "4", "ephemeral-storage": "10Gi"})),
        ("%%step t --image 'ghcr.io/acme/train:1.2' --label team=ml --annotation a=b=c",
         Directive(role="step", step="t", image="ghcr.io/acme/train:1.2",
                   labels={"team": "ml"}, annotations={"a": "b=c"})),
        ("%%step t --retries 2 --timeout 2h", Directive(role="step", step="t", retries=2,
                                                         timeout=7200.0)),
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
    assert merged == Directive(role="step", step="a", prev=["x"],
                               resources={"memory": "1Gi", "nvidia.com/gpu": "1"})
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

    def build_notebook(*cells: tuple[list[str] | str, str],
                       metadata: dict[str, object] | None = None) -> object:
        return new_notebook(
            cells=[new_code_cell(src, metadata={"tags": [tags] if isinstance(tags, str)
                                                else tags}) for tags, src in cells],
            metadata={"kernelspec": {"name": "python3", "language": "python",
                                     "display_name": "Python 3"}, **(metadata or {})})
    tagged = Pipeline.from_nb(build_notebook((["step:a", "cache:off"], "a = 1"),
                                             ("step:b", "b = 2")))
    assert {s.name: s.cache for s in tagged.steps} == {"a": False, "b": True}
    defaults = Pipeline.from_nb(build_notebook(
        ("step:a", "a = 1"), ("step:b", "b = 2"),
        metadata={"kfnb": {"steps_defaults": ["cache:off"]}}))
    assert {s.name: s.cache for s in defaults.steps} == {"a": False, "b": False}
    own = Pipeline.from_nb(build_notebook(
        (["step:a", "cache:on"], "a = 1"), ("step:b", "b = 2"),
        metadata={"kfnb": {"steps_defaults": ["cache:off"]}}))
    assert {s.name: s.cache for s in own.steps} == {"a": True, "b": False}  # the cell wins
    with pytest.raises(NotebookError, match="cache:maybe' must be cache:off or cache:on"):
        Pipeline.from_nb(build_notebook((["step:a", "cache:maybe"], "a = 1")))
