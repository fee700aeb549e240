"""A run is drawn as it ran: edit the notebook after a run and ``kfnb show`` and the widget's
DAG still show the old run's steps and edges, from the pipeline stored with the run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import kfnb
from kfnb.cli import main
from kfnb.tracking import Store
from kfnb.widgets import RunWidget

Write = Callable[..., Path]


def test_an_edited_notebook_leaves_an_old_run_as_it_ran(
    write_notebook: Write, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_notebook("edited", ("step:a", "x = 1"), ("step:b", "y = x"), ("step:c", "w = 3"))
    run = kfnb.run(path, store=store)
    assert run.status == "SUCCEEDED"
    # the same name, other edges (a -> c instead of a -> b) and a new step d
    write_notebook(
        "edited", ("step:a", "x = 1"), ("step:b", "y = 2"), ("step:c", "w = x"), ("step:d", "q = w")
    )
    assert [s.name for s in kfnb.Pipeline.from_notebook(path).steps] == ["a", "b", "c", "d"]

    svg = RunWidget(run, follow=False).dag.value
    assert 'data-source="a" data-target="b"' in svg
    assert 'data-source="a" data-target="c"' not in svg and 'data-step="d"' not in svg
    assert svg.count("kfnb-dag-edge") == 1

    capsys.readouterr()
    assert main(["show", run.id]) == 0
    out = capsys.readouterr().out
    spec = out.split("Pipeline edited as it ran (3 steps, in run order)\n", 1)[1]
    assert spec.startswith("  a  (cells 0)\n  b  (cells 1)\n      <- a  x\n  c  (cells 2)\n")
    assert "<- a  x" not in spec.split("  c  (cells 2)")[1]
    assert "  d  " not in out
