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
