"""Limits on what users feed kfnb: parameter expressions and values, params files, image
references, numeric step settings and backend options, and the command lines the CLI prints.
Every refusal is a ``KfnbError`` that says what is too big (or wrong), the limit and the fix."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from kfnb import Pipeline
from kfnb.backends.local import LocalConfig
from kfnb.backends.options import BackendError, build
from kfnb.cli import main
from kfnb.errors import NotebookError
from kfnb.notebook.images import image_problem
from kfnb.notebook.magic import parse_header
from kfnb.notebook.tags import TagError, parse_tags
from kfnb.params import (
    MAX_DEPTH,
    MAX_VALUE_BYTES,
    ParameterError,
    TooBigError,
    check_value,
    load_params_file,
    resolve_params,
    short,
)

PARAMS = "x = 1\nf = 0.5\ns = 'a'\nl = [1, 2]\nd = {'a': 1}\nany_ = None"
SUM = "+".join(["1"] * 20000)


@pytest.fixture
def pipeline(nb: Callable[..., Any]) -> Pipeline:
    return Pipeline.from_nb(nb(("pipeline-parameters", PARAMS), ("step:a", "y = x")))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KFNB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _save(nb: nbformat.NotebookNode, path: Path) -> Path:
    nbformat.write(nb, str(path))
    return path


# -- 1. expressions of 20,000 terms: a clear error, not a RecursionError -----------------------
@pytest.mark.parametrize("tag", ["pipeline-parameters", "parameters"])
def test_a_parameters_cell_of_20000_terms_is_a_notebook_error(
    nb: Callable[..., Any], tag: str
) -> None:
    with pytest.raises(NotebookError) as caught:
        Pipeline.from_nb(nb((tag, f"x = {SUM}"), ("step:a", "y = x")))
    err = caught.value
    assert err.cell_index == 0
    assert "nested too deeply" in err.message and "100 levels" in err.message
    assert err.fix and "literal" in err.fix


@pytest.mark.parametrize("tag", ["pipeline-parameters", "parameters"])
def test_a_parameters_cell_expression_over_the_depth_limit_is_refused(
    nb: Callable[..., Any], tag: str
) -> None:
    terms = "+".join(["1"] * 500)  # parses, but deeper than the limit
    with pytest.raises(NotebookError, match="more than 100 levels deep"):
        Pipeline.from_nb(nb((tag, f"x = {terms}"), ("step:a", "y = x")))


def test_a_parameters_cell_literal_nested_too_deep_is_refused(nb: Callable[..., Any]) -> None:
    deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    with pytest.raises(NotebookError, match=f"more than {MAX_DEPTH} levels deep"):
        Pipeline.from_nb(nb(("pipeline-parameters", f"x = {deep}"), ("step:a", "y = x")))


def test_a_non_finite_default_is_refused(nb: Callable[..., Any]) -> None:
    with pytest.raises(NotebookError, match="not a finite number"):
        Pipeline.from_nb(nb(("pipeline-parameters", "x = 1e999"), ("step:a", "y = x")))


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("l", "[" * 20000 + "]" * 20000, "nests brackets 20000 levels deep, over the limit of 32"),
        ("d", "{a: " * 5000 + "1" + "}" * 5000, "levels deep, over the limit of 32"),
        ("any_", "[" * 40 + "]" * 40, "nests brackets 40 levels deep"),
    ],
)
def test_a_command_line_value_nested_too_deep_is_refused(
    pipeline: Pipeline, name: str, text: str, message: str
) -> None:
    with pytest.raises(TooBigError, match=message) as caught:
        resolve_params(pipeline, strings=[(name, text)])
    assert "file path" in (caught.value.fix or "")


def test_a_command_line_sum_of_20000_terms_is_not_an_int(pipeline: Pipeline) -> None:
    with pytest.raises(ParameterError, match="is not an int"):
        resolve_params(pipeline, strings=[("x", SUM)])
    # an "any" parameter reads it as YAML: the text, never evaluated
    assert resolve_params(pipeline, strings=[("any_", SUM)])["any_"] == SUM


# -- 2. values over 64 KiB --------------------------------------------------------------------
def test_a_10_mb_value_is_refused_wherever_it_comes_from(
    pipeline: Pipeline, nb: Callable[..., Any], tmp_path: Path
) -> None:
    big = "a" * (10 * 1024 * 1024)
    with pytest.raises(TooBigError, match="over the limit of 64 KiB") as caught:
        resolve_params(pipeline, strings=[("s", big)])
    assert "pass a file path" in (caught.value.fix or "")
    assert len(str(caught.value)) < 500
    with pytest.raises(TooBigError, match="is more than 64 KiB"):
        check_value(pipeline, "s", big)
    with pytest.raises(TooBigError, match="is more than 64 KiB"):
        check_value(pipeline, "l", list(range(MAX_VALUE_BYTES)))
    with pytest.raises(NotebookError, match="default of parameter 'x' is more than 64 KiB"):
        Pipeline.from_nb(nb(("pipeline-parameters", f"x = {big[:100_000]!r}"), ("step:a", "y=x")))
    (tmp_path / "p.yaml").write_text(f"s: {big[:100_000]}\n")
    with pytest.raises(TooBigError, match="line 1"):
        load_params_file(tmp_path / "p.yaml")
    assert resolve_params(pipeline, strings=[("s", "a" * 60_000)])["s"] == "a" * 60_000


def test_short_names_long_values_by_their_length() -> None:
    assert short("abc") == "'abc'"
    text = short("a" * (10 * 1024 * 1024))
    assert len(text) < 120 and text.endswith("... (a str of 10485760 chars)")
    assert short(list(range(1000))).endswith("(a list of 1000 items)")


def test_show_and_describe_cut_long_values(
    home: Path, tmp_path: Path, nb: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from kfnb.tracking import Store

    run = Store(home).create_run(
        kind="pipeline",
        name="big",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={"s": "a" * (10 * 1024 * 1024)},
    )
    assert main(["show", run.id]) == 0
    out = capsys.readouterr().out
    assert len(out) < 3000
    assert "s='aaaa" in out and "... (a str of 10485760 chars)" in out
    path = _save(
        nb(("pipeline-parameters", f"s = {'b' * 50_000!r}"), ("step:a", "y = s")),
        tmp_path / "n.ipynb",
    )
    assert main(["describe", str(path)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  s "))
    assert len(line) < 150 and "(a str of 50000 chars)" in line


# -- 3. a params file's content is never echoed -----------------------------------------------
SHADOW = "root:$6$salt$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (SHADOW.encode(), "line 1: a key that is not a parameter name"),
        (b"x: 1\n  secret_value: [unclosed\n", "line 2 is not valid YAML"),
        (b"x: 'secret_value\xff'\n", "is not UTF-8 text (line 1)"),
        (b"x: 1\nsecret_value\x00\n", "holds a NUL character (line 2)"),
        (b"- secret_value\n", "must hold a mapping of parameter names to values, not a list"),
        (b"l: " + b"[" * 100 + b"]" * 100 + b"\n", "nests brackets 100 levels deep"),
    ],
)
def test_a_bad_params_file_is_named_with_its_line_never_echoed(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "shadow"
    path.write_bytes(content)
    with pytest.raises(ParameterError) as caught:
        load_params_file(path)
    text = str(caught.value)
    assert message in text and str(path) in text
    assert "secret_value" not in text and "$6$" not in text and "daemon" not in text


def test_a_params_file_value_of_the_wrong_type_is_located_not_echoed(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("f: 0.5\nx: secret_value\n")
    with pytest.raises(ParameterError) as caught:
        resolve_params(pipeline, load_params_file(path))
    assert f"{path}, line 2" in str(caught.value) and "is an int" in str(caught.value)
    assert "secret_value" not in str(caught.value)


@pytest.mark.parametrize("command", ["run", "tune"])
def test_cli_f_shadow_names_the_file_and_line(
    home: Path,
    tmp_path: Path,
    nb: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    path = _save(nb(("pipeline-parameters", PARAMS), ("step:a", "y = x")), tmp_path / "n.ipynb")
    (tmp_path / "shadow").write_text(SHADOW)
    (tmp_path / "ok.yaml").write_text("x: secret_value\n")
    for params in ("shadow", "ok.yaml"):
        assert main([command, str(path), "-f", str(tmp_path / params)]) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / params}, line 1" in err
        assert "$6$" not in err and "secret_value" not in err and "daemon" not in err


# -- 4. command lines printed for pasting are shell-quoted ------------------------------------
def test_compile_submit_hint_is_shell_quoted(
    home: Path, tmp_path: Path, nb: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("kfp")
    evil = _save(
        nb(("pipeline-parameters", "x = 1"), ("step:a", "y = x")), tmp_path / "x;touch pwned.ipynb"
    )
    assert main(["compile", str(evil), "-o", str(tmp_path / "o.yaml")]) == 0
    hint = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("submit it"))
    assert hint == f"submit it: kfnb run {shlex.quote(str(evil))} --backend kfp --host URL"
    assert shlex.split(hint.partition(": ")[2])[2] == str(evil)


# -- 5. image references: one check, every reader ---------------------------------------------
GOOD_IMAGES = [
    "python",
    "python:3.11-slim",
    "ghcr.io/org/app:1.2",
    "localhost:5000/a/b_c__d-e:v1",
    "gcr.io/arrikto/jupyter-kale-py38:develop-l0-release-1.2",
    "python@sha256:" + "a" * 64,
    "registry.example.com:443/team/app:latest@sha256:" + "b" * 64,
    "[::1]:5000/app",
]
BAD_IMAGES = [
    "a b",
    'a"b',
    "a'b",
    "$(id)",
    "x;rm -rf /",
    "a\nb",
    "a\x00b",
    "\u202eimg",
    "UPPER/case",
    "a" * 5000,
    "python:" + "1" * 200,
    "python:.x",
    "python@sha256:zz",
    "",
    "/",
    ":tag",
]


@pytest.mark.parametrize("ref", GOOD_IMAGES)
def test_well_formed_image_references_pass(ref: str) -> None:
    assert image_problem(ref) is None
    assert parse_tags(["step:a", f"image:{ref}"]).image == ref


@pytest.mark.parametrize("ref", BAD_IMAGES)
def test_malformed_image_references_are_refused_by_every_reader(
    ref: str, nb: Callable[..., Any], tmp_path: Path
) -> None:
    assert image_problem(ref) is not None
    if ref:  # an empty image: tag is no image tag; an empty option is unset
        with pytest.raises(TagError, match="no valid image reference") as caught:
            parse_tags(["step:a", f"image:{ref}"])
        assert len(str(caught.value)) < 400
        with pytest.raises(TagError):
            parse_header(f"%%step a --image {shlex.quote(ref)}")
        with pytest.raises(BackendError, match="option 'image'"):
            build("kfp", _kfp_config(), {"image": ref})
        with pytest.raises(NotebookError, match=r"kfnb\.image"):
            Pipeline.from_nb(nb(("step:a", "y = 1"), metadata={"kfnb": {"image": ref}}))
        with pytest.raises(SystemExit) as exit_:
            main(["compile", "nb.ipynb", "-o", str(tmp_path / "o.yaml"), "--image", ref])
        assert exit_.value.code == 2


def _kfp_config() -> type:
    from kfnb.backends.kfp import KfpConfig

    return KfpConfig


def test_steps_defaults_image_is_checked(nb: Callable[..., Any]) -> None:
    meta = {"kfnb": {"steps_defaults": ["image:x;y"]}}
    with pytest.raises(NotebookError, match="steps_defaults: tag 'image:x;y'"):
        Pipeline.from_nb(nb(("step:a", "y = 1"), metadata=meta))


# -- 6. a parameter given twice ---------------------------------------------------------------
def test_a_parameter_given_twice_is_an_error(
    pipeline: Pipeline, home: Path, tmp_path: Path, nb: Callable[..., Any], capsys: Any
) -> None:
    with pytest.raises(ParameterError, match="parameter 'x' is given twice: '1' and '2'") as caught:
        resolve_params(pipeline, strings=[("x", "1"), ("x", "2")])
    assert caught.value.fix == "pass it once: -p x VALUE"
    path = _save(nb(("pipeline-parameters", PARAMS), ("step:a", "y = x")), tmp_path / "n.ipynb")
    for command in (["run", str(path)], ["batch", str(path), "--grid", str(tmp_path / "g")]):
        assert main([*command, "-p", "x", "1", "-p", "f", "2", "-p", "x", "3"]) == 2
        assert "given twice: '1' and '3'" in capsys.readouterr().err


# -- 7. numeric settings within sane ranges ---------------------------------------------------
@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (["retries:99999999999"], "more than 100 retries"),
        (["retries:101"], "more than 100 retries"),
        (["timeout:99999999h"], "longer than 30 days"),
        (["limit:gpu:99999999999"], "more than 1024 GPUs"),
        (["limit:cpu:1e999"], "cpu limit must be between"),
        (["limit:cpu:100000"], "cpu limit must be between"),
        (["limit:memory:99999Ei"], "memory limit must be between"),
        (["env:" + "E" * 300 + ":1"], "over the limit of 253"),
    ],
)
def test_step_settings_out_of_range_are_refused(tags: list[str], message: str) -> None:
    with pytest.raises(TagError, match=message):
        parse_tags(["step:a", *tags])


@pytest.mark.parametrize(
    "header",
    ["%%step a --retries 99999999999", "%%step a --gpus 5000", "%%step a --memory 999999Ei"],
)
def test_step_magic_settings_out_of_range_are_refused(header: str) -> None:
    with pytest.raises(TagError, match="limit"):
        parse_header(header)


def test_step_settings_in_range_pass() -> None:
    d = parse_tags(["step:a", "retries:100", "timeout:24h", "limit:gpu:8", "limit:cpu:500m"])
    assert (d.retries, d.timeout, d.resources["nvidia.com/gpu"]) == (100, 86400.0, "8")
    assert parse_tags(["step:a", "limit:memory:4Gi"]).resources["memory"] == "4Gi"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"max_parallel": "99999999999"}, "'max_parallel' must be between 1 and 4096"),
        ({"max_parallel": 0}, "'max_parallel' must be between 1 and 4096"),
        ({"pool_size": 10**30}, "'pool_size' must be between 0 and 256"),
        ({"cpus": "1e9"}, "'cpus' must be between"),
        ({"max_parallel": "9" * 400}, "must be an integer"),
    ],
)
def test_backend_options_out_of_range_are_refused(given: dict[str, Any], message: str) -> None:
    with pytest.raises(BackendError, match=message):
        build("local", LocalConfig, given)


def test_backend_option_from_the_environment_is_bounded() -> None:
    with pytest.raises(BackendError, match="environment variable KFNB_MAX_PARALLEL"):
        build("local", LocalConfig, {}, env={"KFNB_MAX_PARALLEL": "99999999999"})


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "n.ipynb", "--max-parallel", "99999999999"],
        ["tune", "n.ipynb", "--trials", "0"],
        ["batch", "n.ipynb", "--max-parallel", "-1"],
        ["train", "fit.py", "--gpus", "99999999999"],
        ["train", "fit.py", "--cpu", "1e999"],
    ],
)
def test_cli_counts_out_of_range_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_cli_errors_are_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "\u202e\x00" + "x" * 5000]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 500 and "\u202e" not in err
    assert "is not a run id" in err
