"""``%load_ext kfnb`` and the interactive ``%%step`` magic, in a real IPython shell."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from IPython.core.interactiveshell import InteractiveShell

from kfnb.backends import Backend, StoreRunHandle, option


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext kfnb", store_history=False)
    yield ip
    ip.reset(new_session=False)
    InteractiveShell.clear_instance()


def test_step_runs_its_body(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%step train --gpus 1 --after load\nx = 40\ny = x + 2")
    assert result.success
    assert shell.user_ns["y"] == 42


def test_bad_options_fail_the_cell_without_running_it(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%step train --gpus two\nran = True")
    assert not result.success
    assert "not a Kubernetes quantity" in str(result.error_in_exec)
    assert "ran" not in shell.user_ns


def test_an_error_in_the_body_fails_the_cell(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%step broken\nraise ValueError('boom')")
    assert not result.success
    assert isinstance(result.error_in_exec, ValueError)


def test_section_words_run_their_body(shell: InteractiveShell) -> None:
    assert shell.run_cell("%%step parameters\nlr = 0.1").success
    assert shell.user_ns["lr"] == 0.1


def test_no_cache_option_is_parsed() -> None:
    from kfnb.notebook.magic import parse_header
    from kfnb.notebook.tags import Directive, TagError

    assert parse_header("%%step x --no-cache") == Directive(role="step", step="x", cache=False)
    assert parse_header("%%step x").cache is None  # not said: the notebook's default applies
    with pytest.raises(TagError, match="takes no step options"):
        parse_header("%%step imports --no-cache")


def test_no_cache_on_a_step_line_turns_the_cache_off_for_that_step() -> None:
    from nbformat.v4 import new_code_cell, new_notebook

    from kfnb import Pipeline

    nb = new_notebook(
        cells=[
            new_code_cell("%%step x --no-cache\nx = 1"),
            new_code_cell("%%step y --after x\ny = 2"),
        ],
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        },
    )
    pipeline = Pipeline.from_nb(nb)
    assert {s.name: s.cache for s in pipeline.steps} == {"x": False, "y": True}


def test_the_magic_accepts_no_cache(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%step x --no-cache\nz = 7")
    assert result.success
    assert shell.user_ns["z"] == 7


def test_the_magic_accepts_env_node_selectors_and_tolerations(shell: InteractiveShell) -> None:
    result = shell.run_cell(
        "%%step x --env GREETING=hello --node-selector pool=gpu "
        "--toleration nvidia.com/gpu=present:NoSchedule\nz = 8"
    )
    assert result.success
    assert shell.user_ns["z"] == 8


def test_a_bad_toleration_fails_the_cell_with_a_suggestion(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%step x --toleration gpu:noschedule\nran = True")
    assert not result.success
    assert "did you mean '--toleration gpu:NoSchedule'?" in str(result.error_in_exec)
    assert "ran" not in shell.user_ns


def test_env_on_a_step_line_reaches_the_step() -> None:
    from nbformat.v4 import new_code_cell, new_notebook

    from kfnb import Pipeline

    nb = new_notebook(
        cells=[
            new_code_cell("%%step x --env A=1 --env B=x=y\nx = 1"),
            new_code_cell("%%step y --node-selector pool=gpu --toleration spot\ny = x"),
        ],
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        },
    )
    pipeline = Pipeline.from_nb(nb)
    assert pipeline.step("x").env == {"A": "1", "B": "x=y"}
    assert pipeline.step("y").to_dict()["node_selector"] == {"pool": "gpu"}
    assert [str(t) for t in pipeline.step("y").tolerations] == ["spot"]


# -- the %%step header: one grammar for the magic and the parser ----------------------------
def test_limit_retries_and_timeout_are_one_grammar(shell: InteractiveShell) -> None:
    from nbformat.v4 import new_code_cell, new_notebook

    from kfnb import Pipeline
    from kfnb.notebook.magic import parse_header

    line = "%%step train --limit cpu=2 --limit memory=1Gi --gpus 1 --retries 2 --timeout 30m"
    d = parse_header(line)
    assert d.resources == {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"}
    assert (d.retries, d.timeout) == (2, 1800.0)
    nb = new_notebook(
        cells=[new_code_cell(f"{line}\nx = 1")],
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        },
    )
    step = Pipeline.from_nb(nb).step("train")
    assert (step.resources, step.retries, step.timeout) == (d.resources, 2, 1800.0)
    assert shell.run_cell(f"{line}\nw = 3").success and shell.user_ns["w"] == 3
    for bad, message in (
        ("--retries lots", "retries"),
        ("--timeout soon", "timeout"),
        ("--limit cpu", "cpu"),
    ):
        result = shell.run_cell(f"%%step t {bad}\nran = True")
        assert not result.success and message in str(result.error_in_exec)
        assert "ran" not in shell.user_ns


def test_notebook_control_lines_are_no_pipeline_code() -> None:
    from nbformat.v4 import new_code_cell, new_notebook

    from kfnb import Pipeline
    from kfnb.notebook.magic import strip_control_lines

    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext kfnb"),
            new_code_cell("%%step a\nx = 1\n%kfnb run -p n 2\ny = 2"),
            new_code_cell("%%step metrics\nprint(y)"),
            new_code_cell("%kfnb run -p n 4"),
            new_code_cell("  %reload_ext kfnb\n%kfnb runs\n"),
        ],
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        },
    )
    pipeline = Pipeline.from_nb(nb)  # cells after the metrics cell would be an error
    assert [s.name for s in pipeline.steps] == ["a"]
    assert [c.source for c in pipeline.step("a").cells] == ["x = 1\n\ny = 2"]
    assert [m.name for m in pipeline.metrics] == ["y"]
    assert (
        strip_control_lines("%kfnbx\n%load_ext kfnb_other\nkfnb = 1")
        == "%kfnbx\n%load_ext kfnb_other\nkfnb = 1"
    )


# -- %kfnb -----------------------------------------------------------------------------------
NB_META = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A notebook in a folder that is the kernel's cwd, a run store of its own, and the
    session variable jupyter-server sets."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    monkeypatch.setenv("KFNB_HOME", str(tmp_path / "home"))
    folder = tmp_path / "work" / "sub"
    folder.mkdir(parents=True)
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext kfnb"),
            new_code_cell("%%step parameters\nn = 3"),
            new_code_cell("%%step a\nx = 41"),
            new_code_cell("%%step b\ny = x + n"),
            new_code_cell("%kfnb run"),
        ],
        metadata=NB_META,
    )
    nbformat.write(nb, folder / "demo.ipynb")
    monkeypatch.chdir(folder)
    monkeypatch.setenv("JPY_SESSION_NAME", "sub/demo.ipynb")  # relative to the server root
    return folder / "demo.ipynb"


def magic(
    shell: InteractiveShell, line: str, capsys: pytest.CaptureFixture[str]
) -> tuple[str, str]:
    capsys.readouterr()
    result = shell.run_cell(f"%kfnb {line}", store_history=False)
    assert result.success, result.error_in_exec  # a user's mistake never fails the cell
    out = capsys.readouterr()
    return out.out, out.err


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", "the following arguments are required: COMMAND"),
        ("frobnicate", "invalid choice: 'frobnicate'"),
        ("run --max-parallel many", "argument --max-parallel: invalid int value: 'many'"),
        ("show", "the following arguments are required: run"),
        ("run 'unclosed", "No closing quotation"),
        ("run nowhere.ipynb", "no notebook at 'nowhere.ipynb'"),
        ("run -p nope 1", "nope"),
        ("run --host http://x", "backend 'local' has no option 'host'. Fix: "),
        ("run --option max_paralel=2", "did you mean 'max_parallel'?"),
        ("run --option nothing", "--option 'nothing' is not KEY=VALUE"),
        ("show 20990101-nope", "20990101-nope"),
    ],
)
def test_errors_print_one_readable_line(
    shell: InteractiveShell,
    project: Path,
    line: str,
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, err = magic(shell, line, capsys)
    assert err.startswith("kfnb: error: ") and expected in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""


def test_debug_shows_the_traceback(
    shell: InteractiveShell, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, err = magic(shell, "--debug show 20990101-nope", capsys)
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("kfnb: error: ")


def test_help_prints_help_and_the_kernel_goes_on(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = magic(shell, "--help", capsys)
    assert out.startswith("usage: %kfnb") and "describe" in out and "cancel" in out
    assert "materialize" not in out
    out, _ = magic(shell, "run --help", capsys)
    assert "usage: %kfnb run" in out and "-p NAME VALUE" in out and "--no-cache" in out
    assert "--detach" not in out and "default: the one this kernel belongs to" in out
    assert shell.run_cell("z = 1").success


def test_describe_the_kernels_own_notebook(
    shell: InteractiveShell, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfnb import cli

    out, err = magic(shell, "describe", capsys)
    assert err == ""
    cli.main(["describe", str(project)])
    assert out == capsys.readouterr().out  # the CLI's rendering
    assert "Steps (2)" in out and "in   x  <- a" in out
    out, _ = magic(shell, f"describe --json {project}", capsys)
    assert '"name": "demo"' in out


def test_which_notebook(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kfnb.errors import KfnbError
    from kfnb.session import notebook_path

    folder = project.parent
    assert notebook_path(None, {}, {"JPY_SESSION_NAME": "sub/demo.ipynb"}, folder) == project
    assert notebook_path(None, {}, {"JPY_SESSION_NAME": "demo.ipynb"}, folder) == project
    assert notebook_path(None, {}, {"JPY_SESSION_NAME": str(project)}, "/") == project
    assert notebook_path(None, {"__session__": "demo.ipynb"}, {}, folder) == project
    assert notebook_path("demo.ipynb", {}, {}, folder) == project
    with pytest.raises(KfnbError, match=r"cannot tell which notebook.*pass the notebook's path"):
        notebook_path(None, {}, {}, folder)
    with pytest.raises(KfnbError, match=r"session is 'console-1'.*pass"):
        notebook_path(None, {}, {"JPY_SESSION_NAME": "console-1"}, folder)
    with pytest.raises(KfnbError, match=r"'other.ipynb' is not in .*save it, or pass its path"):
        notebook_path(None, {}, {"JPY_SESSION_NAME": "other.ipynb"}, folder)


def test_unsaved_cells_are_found() -> None:
    from kfnb.magics.session import unsaved

    saved = ["%load_ext kfnb", "%%step a\nx = 41\n", "y = x + 1", "%kfnb run -p n 4"]
    ran = [
        (1.0, "%load_ext kfnb"),
        (2.0, "%%step a\nx = 41"),
        (3.0, "y = x + 1  "),
        (4.0, "%kfnb run"),
        (5.0, "%matplotlib inline\n%time 1"),
    ]
    assert unsaved(saved, ran, saved_at=10.0) == []
    assert unsaved(saved, ran, saved_at=0.5) == []  # all of it is on disk
    edited = [*ran, (6.0, "x = 42"), (7.0, "z = 1\n%kfnb run"), (8.0, "x = 42")]
    assert unsaved(saved, edited, saved_at=5.5) == ["z = 1", "x = 42"]
    # run, then edited and saved: what ran before the save is not an unsaved change
    assert unsaved(saved, edited, saved_at=9.0) == []
    assert unsaved(saved, [(None, "q = 1")], saved_at=9.0) == ["q = 1"]


def test_the_unsaved_warning_in_a_shell(shell: InteractiveShell, project: Path) -> None:
    from kfnb.magics.session import unsaved_warning

    for source in ("%%step parameters\nn = 3", "%%step a\nx = 41", "%%step b\ny = x + n"):
        assert shell.run_cell(source, store_history=True).success
    os.utime(project, (time.time() - 60, time.time() - 60))
    assert unsaved_warning(shell, project) is None  # what ran is what is saved
    for source in ("%%step a\nx = 42", "x = 41  # scratch", "q = 2\nr = 3", "s = 4"):
        assert shell.run_cell(source, store_history=True).success
    warning = unsaved_warning(shell, project)
    assert warning == (
        "kfnb: warning: the saved notebook differs from what you ran in this kernel: 4 cells "
        "(e.g. 'x = 42', 'x = 41  # scratch', 'q = 2') are not in demo.ipynb on disk. kfnb "
        "runs the saved file: save (Ctrl+S) to include your changes"
    )
    later = time.time() + 1
    os.utime(project, (later, later))  # saved after those cells ran (edited since)
    assert unsaved_warning(shell, project) is None


@dataclass
class RecordOnlyConfig:
    max_parallel: int | None = option(None, "most steps at once")
    pool_size: int = option(2, "kernels kept warm between runs")


class RecordOnly(Backend):
    """A backend that records the run it is given and runs nothing: what the magic hands a
    backend, without kernels."""

    name = "record-only"
    config_class = RecordOnlyConfig
    configs: ClassVar[list[RecordOnlyConfig]] = []

    def submit(self, pipeline: Any, params: Any, store: Any) -> StoreRunHandle:
        self.configs.append(self.config)
        record = store.create_run(
            kind="pipeline",
            name=pipeline.name,
            backend=self.name,
            notebook=pipeline.source,
            notebook_hash=None,
            params=dict(params),
            steps=[s.name for s in pipeline.steps],
        )
        return StoreRunHandle(store, record.id)


@pytest.fixture
def record_only() -> Iterator[type[RecordOnly]]:
    from kfnb import backends

    RecordOnly.configs.clear()
    backends.register(RecordOnly.name, RecordOnly)
    yield RecordOnly
    backends.unregister(RecordOnly.name)


def test_run_starts_the_saved_notebook_and_returns(
    shell: InteractiveShell,
    project: Path,
    record_only: type[RecordOnly],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kfnb.magics import line as line_magic
    from kfnb.tracking import Store

    monkeypatch.setattr(line_magic, "_widget", lambda name: None)
    shell.run_cell("%%step a\nx = 40", store_history=True)
    os.utime(project, (time.time() - 60, time.time() - 60))
    out, err = magic(shell, "run -p n 4 --max-parallel 2 --backend record-only", capsys)
    [record] = Store().list_runs()
    assert record.notebook == str(project.resolve()) and record.params == {"n": 4}
    assert [s.name for s in record.steps] == ["a", "b"]
    [config] = record_only.configs
    assert config.max_parallel == 2
    assert config.pool_size == 2  # not one-shot: the kernel keeps its warm pool for next runs
    assert "1 cell (e.g. 'x = 40') is not in demo.ipynb on disk" in err
    assert out.startswith(f"started run {record.id} ") and "(pending)" in out
    assert "%kfnb show" in out

    shown: list[Any] = []

    class Widget:
        def __init__(self, run: Any, settings: Any = None) -> None:
            shown.append(run)

        def display(self) -> None:
            shown.append("displayed")

    monkeypatch.setattr(line_magic, "_widget", lambda name: Widget)
    out, _ = magic(shell, "run --backend record-only", capsys)
    assert out == "" and shown[1:] == ["displayed"] and shown[0].record.name == "demo"


def test_run_refuses_inside_a_step(
    shell: InteractiveShell,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KFNB_STEP", "a")
    _, err = magic(shell, "run", capsys)
    assert err.startswith("kfnb: error: %kfnb run inside a pipeline step")


def test_runs_show_logs_cancel(
    shell: InteractiveShell,
    project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kfnb.magics import line as line_magic
    from kfnb.tracking import Store

    monkeypatch.setattr(line_magic, "_runs_table", lambda: None)
    out, _ = magic(shell, "runs", capsys)
    assert out.startswith("runs of demo.ipynb") and "no runs of" in out
    store = Store()
    other = store.create_run(
        kind="pipeline",
        name="elsewhere",
        backend="local",
        notebook=str(tmp_path / "x.ipynb"),
        notebook_hash=None,
        params={},
        steps=["a"],
    )
    done = store.create_run(
        kind="pipeline",
        name="demo",
        backend="local",
        notebook=str(project.resolve()),
        notebook_hash=None,
        params={"n": 4},
        steps=["a", "b"],
    )
    log = tmp_path / "a.log"
    log.write_text("hello from a\n")
    store.set_run_status(done.id, "RUNNING")
    store.set_step_status(done.id, "a", "RUNNING", log=str(log))
    store.set_step_status(done.id, "a", "SUCCEEDED")
    store.set_step_status(done.id, "b", "RUNNING")
    store.set_step_status(done.id, "b", "SUCCEEDED")
    store.set_run_status(done.id, "SUCCEEDED")
    pending = store.create_run(
        kind="pipeline",
        name="demo",
        backend="local",
        notebook=str(project.resolve()),
        notebook_hash=None,
        params={},
        steps=["a"],
    )

    out, _ = magic(shell, "runs", capsys)
    assert done.id in out and pending.id in out and other.id not in out and "SUCCEEDED" in out
    out, _ = magic(shell, f"show {done.id}", capsys)
    assert out.startswith(f"demo  run {done.id}  SUCCEEDED") and "params: n=4" in out
    out, _ = magic(shell, f"logs {done.id}", capsys)
    assert out == "==> a <==\nhello from a\n"
    out, _ = magic(shell, f"logs {done.id} a", capsys)
    assert out == "hello from a\n"
    out, _ = magic(shell, f"cancel {pending.id}", capsys)
    assert out == f"run {pending.id}: CANCELED\n"
    out, _ = magic(shell, f"cancel {done.id}", capsys)
    assert out == f"run {done.id} already ended: SUCCEEDED\n"

    listed: list[Any] = []

    def table(**kw: Any) -> str:
        listed.append(kw)
        return "the table"

    monkeypatch.setattr(line_magic, "_runs_table", lambda: table)
    out, _ = magic(shell, "runs --limit 5", capsys)
    [asked] = listed
    assert asked["notebook"] == project and asked["limit"] == 5 and "the table" in out
    assert asked["store"].home == store.home


def test_launch_shows_the_launcher(
    shell: InteractiveShell,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kfnb.magics import line as line_magic

    monkeypatch.setattr(
        line_magic, "_widget", lambda name: lambda path, settings: f"<{name} {path.name}>"
    )
    out, _ = magic(shell, "launch", capsys)
    assert out == "'<Launcher demo.ipynb>'\n"  # displayed
    monkeypatch.setattr(line_magic, "_widget", lambda name: None)
    _, err = magic(shell, "launch", capsys)
    assert err.startswith("kfnb: error: the launcher needs kfnb.widgets")


@pytest.mark.parametrize(
    ("cli_args", "magic_args", "python_options", "option"),
    [
        (
            ["--option", "max_paralel=2"],
            "--option max_paralel=2",
            {"max_paralel": 2},
            "max_paralel",
        ),
        (["--host", "http://x"], "--host http://x", {"host": "http://x"}, "host"),
    ],
)
def test_an_unknown_option_is_one_error_on_every_surface(
    shell: InteractiveShell,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    cli_args: list[str],
    magic_args: str,
    python_options: dict[str, Any],
    option: str,
) -> None:
    """The CLI, Python and the magic: the backend's own error, same message and fix; nothing
    runs (the options are checked before the notebook is read)."""
    import kfnb
    from kfnb.backends import BackendError
    from kfnb.cli import main
    from kfnb.tracking import Store

    with pytest.raises(BackendError) as raised:
        kfnb.run(project, **python_options)
    err = raised.value
    assert err.message == f"backend 'local' has no option {option!r}"
    assert err.fix is not None and "its options are: cache, " in err.fix
    if option == "max_paralel":
        assert err.fix.startswith("did you mean 'max_parallel'?")
    capsys.readouterr()
    assert main(["run", str(project), *cli_args]) == 2
    assert capsys.readouterr().err == f"kfnb: error: {err}\n"
    _, from_magic = magic(shell, f"run {magic_args}", capsys)
    assert from_magic == f"kfnb: error: {err}\n"
    assert str(err) == f"{err.message}. Fix: {err.fix}"
    assert Store().list_runs() == []


def test_backends_in_a_notebook(
    shell: InteractiveShell, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfnb.cli import main

    out, err = magic(shell, "backends", capsys)
    assert err == "" and out.startswith("local: available: this machine: ")
    main(["backends"])
    assert out == capsys.readouterr().out  # the CLI's rendering
