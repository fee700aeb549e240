"""How a run looks in a terminal: live table, line-per-change log, summary (no kernels)."""

from __future__ import annotations

import io
from pathlib import Path

from kfnb import progress
from kfnb.tracking import Run, Store


def make_run(tmp_path: Path) -> tuple[Store, str]:
    store = Store(tmp_path / "home")
    run = store.create_run(
        kind="pipeline",
        name="demo",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={"n": 1},
        steps=["load", "train"],
    )
    return store, run.id


def script(store: Store, run_id: str) -> list[Run]:
    """Snapshots of a run moving through its states, as follow() would poll them."""
    snaps = [store.get_run(run_id)]
    store.set_run_status(run_id, "RUNNING")
    store.set_step_status(run_id, "load", "RUNNING")
    snaps.append(store.get_run(run_id))
    store.set_step_status(run_id, "load", "SUCCEEDED")
    store.set_step_status(run_id, "train", "RUNNING")
    snaps.append(store.get_run(run_id))
    store.set_step_status(
        run_id,
        "train",
        "FAILED",
        error={
            "message": "step 'train' failed at cell 4 ('fit()'): ValueError: bad",
            "traceback": "Traceback...\nValueError: bad",
        },
    )
    store.log_metric(run_id, "acc", 0.5)
    store.set_run_status(run_id, "FAILED", error="step 'train' failed")
    snaps.append(store.get_run(run_id))
    return snaps


def test_line_mode_prints_each_change_once(tmp_path: Path) -> None:
    store, run_id = make_run(tmp_path)
    snaps = iter(script(store, run_id))
    out = io.StringIO()
    final = progress.follow(lambda: next(snaps), out=out, interval=0, live=False)
    assert final.status == "FAILED"
    events = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert events == ["load running", "load succeeded", "train running", "train failed"]


def test_live_mode_redraws_the_table_in_place(tmp_path: Path) -> None:
    store, run_id = make_run(tmp_path)
    snaps = iter(script(store, run_id))
    out = io.StringIO()
    progress.follow(lambda: next(snaps), out=out, interval=0, live=True)
    text = out.getvalue()
    assert text.count("\x1b[3F") == 3  # header + 2 steps, moved over 3 times after the first
    last = text.split("\x1b[3F")[-1]
    assert "✓ load" in last and "✗ train" in last and "FAILED" in last


def test_summary_names_the_failure_and_the_log_command(tmp_path: Path) -> None:
    store, run_id = make_run(tmp_path)
    final = script(store, run_id)[-1]
    lines = progress.summary(final)
    assert lines[0].startswith("demo: failed in ") and lines[0].endswith(f"(run {run_id})")
    assert "  ✗ step 'train' failed at cell 4 ('fit()'): ValueError: bad" in lines
    assert f"      full log: kfnb logs {run_id} train" in lines
    assert "  metrics: acc=0.5" in lines


def test_elapsed_formats() -> None:
    from kfnb.format import elapsed

    assert elapsed(0, 5.25) == "5.2s"
    assert elapsed(0, 125) == "2m05s"
    assert elapsed(0, 3 * 3600 + 60) == "3h01m"
    assert elapsed(None, 1) == ""


def test_the_widgets_draw_without_the_terminal_renderer() -> None:
    """kfnb.widgets share kfnb.format with the terminal; they never import kfnb.progress."""
    import subprocess
    import sys

    code = (
        "import sys\nimport kfnb.widgets.run, kfnb.widgets.table, kfnb.widgets.launcher\n"
        "import kfnb.widgets.snapshot, kfnb.widgets.dag\n"
        "assert 'kfnb.progress' not in sys.modules, 'kfnb.progress imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
