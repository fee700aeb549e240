"""``%load_ext kfnb`` and the interactive ``%%step`` magic, in a real IPython shell."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell


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

    nb = new_notebook(cells=[new_code_cell("%%step x --no-cache\nx = 1"),
                             new_code_cell("%%step y --after x\ny = 2")],
                      metadata={"kernelspec": {"name": "python3", "language": "python",
                                               "display_name": "Python 3"}})
    pipeline = Pipeline.from_nb(nb)
    assert {s.name: s.cache for s in pipeline.steps} == {"x": False, "y": True}


def test_the_magic_accepts_no_cache(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%step x --no-cache\nz = 7")
    assert result.success
    assert shell.user_ns["z"] == 7


def test_the_magic_accepts_env_node_selectors_and_tolerations(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%step x --env GREETING=hello --node-selector pool=gpu "
                            "--toleration nvidia.com/gpu=present:NoSchedule\nz = 8")
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

    nb = new_notebook(cells=[new_code_cell("%%step x --env A=1 --env B=x=y\nx = 1"),
                             new_code_cell("%%step y --node-selector pool=gpu --toleration spot"
                                           "\ny = x")],
                      metadata={"kernelspec": {"name": "python3", "language": "python",
                                               "display_name": "Python 3"}})
    pipeline = Pipeline.from_nb(nb)
    assert pipeline.step("x").env == {"A": "1", "B": "x=y"}
    assert pipeline.step("y").to_dict()["node_selector"] == {"pool": "gpu"}
    assert [str(t) for t in pipeline.step("y").tolerations] == ["spot"]
