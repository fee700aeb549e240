"""The tuning widgets on real studies: ``StudyWidget`` follows a local study (real kernels run
each trial) from its daemon thread, Stop, add trials and Run best act on it; ``TuneLauncher``
builds its rows from the parameters cell and starts a study from them. No kernel is needed to
drive the widgets themselves: ipywidgets 8 works in plain Python."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from procs import wait_for

import kfnb
from kfnb.tracking import Store
from kfnb.widgets import RunWidget, StudyWidget, TuneLauncher

Write = Callable[..., Path]

# loss = x (+0.5 for sgd) + 1/(epoch+1): trials with a larger x are worse at every epoch, so
# median pruning after the first trial stops them (deterministic for a seeded random search)
TOY = (
    ("pipeline-parameters", "x = 5.0\nopt = 'sgd'\nepochs = 3\npause = 0.15\nlayers = 2"),
    (
        "step:fit",
        "import time\nimport kfnb\n"
        "for i in range(epochs):\n"
        "    loss = x + (0.5 if opt == 'sgd' else 0.0) + layers * 0.01 + 1.0 / (i + 1)\n"
        "    kfnb.log_metric('loss', loss, step=i)\n"
        "    time.sleep(pause)",
    ),
    ("pipeline-metrics", "print(loss)"),
)
SPACE = {"x": kfnb.Float(0.0, 10.0), "opt": kfnb.Choice(["sgd", "adam"])}
ENDED = ("SUCCEEDED", "FAILED", "CANCELED")


def finish(widget: StudyWidget, timeout: float = 180) -> list[dict[str, Any]]:
    """The widget's states, looked at every 50 ms until the study ended and the follower
    made its last update."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(widget.state())
        if seen[-1]["status"] in ENDED and not (widget.follower and widget.follower.alive):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"the study did not end: {seen[-1]}")


def test_the_widget_follows_a_study_to_its_end(
    write_notebook: Write, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[tuple[str, dict[str, Any]]] = []

    class Handle:
        def update(self, obj: dict[str, Any], raw: bool = False) -> None:
            shown.append(("update", obj))

    def display(obj: Any, raw: bool = False, display_id: bool = False) -> Handle | None:
        if isinstance(obj, dict):
            assert raw and display_id
            shown.append(("display", obj))
            return Handle()
        obj._ipython_display_()  # a widget shown in an Output: it displays itself
        return None

    monkeypatch.setattr("IPython.display.display", display)
    path = write_notebook("toy", *TOY)
    study = kfnb.tune(
        path,
        SPACE,
        objective="loss",
        trials=5,
        algorithm="random",
        seed=3,
        prune=kfnb.Median(startup_trials=1),
        store=store,
    )
    widget = study.widget(poll=0.1)
    assert isinstance(widget, StudyWidget) and "kfnb-StudyWidget" in widget._dom_classes
    assert widget.follower is not None and widget.follower.alive
    widget.display()
    seen = finish(widget)
    final = seen[-1]
    view = study.view()
    # the table ends with every trial in its state, as the store has them
    assert final["status"] == "SUCCEEDED" and final["budget"] == 5
    assert [(n, s) for n, s, _, _ in final["trials"]] == [
        (t["number"], t["status"]) for t in view["trials"]
    ]
    assert len(final["trials"]) == 5 and final["counts"] == view["counts"]
    states = {s for _, s, _, _ in final["trials"]}
    assert states == {"SUCCEEDED", "PRUNED"}, final["trials"]
    for number, status, params, _ in final["trials"]:
        assert f'data-trial="{number}" data-status="{status}"' in widget.table.value
        assert 0.0 <= params["x"] <= 10.0 and params["opt"] in ("sgd", "adam")
    # rows appeared as trials started, and states moved on
    counts = [len(s["trials"]) for s in seen]
    assert counts == sorted(counts) and counts[0] < 5
    assert any(any(t[1] == "RUNNING" for t in s["trials"]) for s in seen)
    # the best so far, in the header and the table
    assert final["best"] == (view["best"]["number"], pytest.approx(study.best_value))
    assert f"{study.best_value:.6g}" in widget.header.value
    assert 'class="kfnb-study-count" data-state="PRUNED"' in widget.header.value
    assert final["stop_disabled"] and not final["best_disabled"]
    # plots in place, drawn only when the trials changed (not every poll)
    assert "kfnb-study-history" in widget.plots.value
    assert "kfnb-study-parallel" in widget.plots.value
    assert "kfnb-history-trial-0-" in widget.plots.value
    assert 1 <= final["plots_drawn"] <= 12 < len(seen)
    # the display: the live view first, its static part replaced by the final state
    assert [k for k, _ in shown] == ["display", "update"]
    first, last = shown[0][1], shown[1][1]
    assert "application/vnd.jupyter.widget-view+json" in last
    assert 'data-status="PRUNED"' not in first["text/html"]
    snapshot = last["text/html"]
    assert snapshot == widget.snapshot_html()
    for number, status, _, _ in final["trials"]:
        assert f'data-trial="{number}" data-status="{status}"' in snapshot
    assert "kfnb-study-history" in snapshot and "kfnb-study-parallel" in snapshot
    assert f"best: loss={study.best_value:.6g}" in last["text/plain"]  # kfnb show's text

    # Run best: a pipeline run of the notebook with the best parameters, shown below
    widget.best_button.click()
    assert widget.message.value == ""
    run = widget.best_run
    assert run is not None and isinstance(widget.best_widget, RunWidget)
    run.wait(120)
    record = store.get_run(run.id)
    assert record.kind == "pipeline" and record.status == "SUCCEEDED"
    assert {k: record.params[k] for k in ("x", "opt")} == study.best_params
    assert record.metrics["loss"] == pytest.approx(study.best_value)
    widget.best_widget.wait(30)


def test_stop_cancels_a_running_study(write_notebook: Write, store: Store) -> None:
    path = write_notebook("long", *TOY)
    study = kfnb.tune(
        path,
        SPACE,
        objective="loss",
        trials=10,
        params={"epochs": 600, "pause": 0.1},
        store=store,
    )
    widget = StudyWidget(study, poll=0.1)
    wait_for(
        lambda: any(t[1] == "RUNNING" for t in widget.state()["trials"]), "a trial to start", 120
    )
    assert not widget.stop_button.disabled
    widget.stop_button.click()
    study.wait(120)
    final = finish(widget)[-1]
    assert final["status"] == "CANCELED"
    assert [s for _, s, _, _ in final["trials"]] == ["CANCELED"]
    assert final["stop_disabled"] and final["best_disabled"]
    child = store.children(study.trials[0]["id"])[0]
    assert child.status == "CANCELED"  # the trial's pipeline run was stopped too
    assert "no succeeded trial yet" in widget.header.value
    assert "kfnb-study-placeholder" in widget.plots.value
    assert widget.follower is not None and not widget.follower.alive

    # more trials for a stopped study: it goes on (the stopped trial again), followed again
    widget.add_trials(1)
    assert "the budget is 11" in widget.message.value
    assert widget.follower is not None and widget.follower.alive
    wait_for(lambda: widget.state()["status"] == "RUNNING", "the study to go on", 60)
    wait_for(lambda: any(t[1] == "RUNNING" for t in widget.state()["trials"]), "a trial again", 120)
    assert not widget.state()["stop_disabled"]
    widget.stop()
    final = finish(widget)[-1]
    assert final["status"] == "CANCELED" and final["budget"] == 11


def test_add_trials_raises_the_budget_of_a_running_study(
    write_notebook: Write, store: Store
) -> None:
    path = write_notebook("more", *TOY)
    study = kfnb.tune(
        path, SPACE, objective="loss", trials=2, params={"pause": 0.3}, seed=1, store=store
    )
    widget = StudyWidget(study, poll=0.1)
    widget.add_count.value = 2
    widget.add_button.click()
    assert "the budget is 4" in widget.message.value
    final = finish(widget)[-1]
    assert final["status"] == "SUCCEEDED" and final["budget"] == 4
    assert [n for n, _, _, _ in final["trials"]] == [0, 1, 2, 3]
    assert all(s == "SUCCEEDED" for _, s, _, _ in final["trials"])
    assert "kfnb-history-trial-3-succeeded" in widget.plots.value
    assert ">4/4 trials<" in widget.header.value
    widget.add_trials(-1)  # the box is bounded at 1; a direct call says what is wrong
    assert "add_trials takes a positive number" in widget.message.value


def test_add_trials_goes_on_with_a_finished_study(write_notebook: Write, store: Store) -> None:
    path = write_notebook("again", *TOY)
    study = kfnb.tune(
        path, SPACE, objective="loss", trials=1, params={"pause": 0.0}, store=store, wait=True
    )
    widget = StudyWidget(study, poll=0.1)
    assert widget.follower is None  # it had ended: nothing to follow
    widget.add_count.value = 1
    widget.add_button.click()
    assert "the budget is 2" in widget.message.value, widget.message.value
    final = finish(widget)[-1]
    assert final["status"] == "SUCCEEDED" and len(final["trials"]) == 2


def test_a_study_by_id_shows_its_end(write_notebook: Write, store: Store) -> None:
    path = write_notebook("byid", *TOY)
    study = kfnb.tune(
        path, SPACE, objective="loss", trials=1, params={"pause": 0.0}, store=store, wait=True
    )
    widget = StudyWidget(study.id, store=store)
    assert widget.study.id == study.id and widget.follower is None
    state = widget.state()
    assert state["status"] == "SUCCEEDED" and state["best"][0] == 0
    assert state["stop_disabled"]
    text = repr(widget)
    assert study.id in text and "SUCCEEDED" in text
    assert "text/plain" in widget.bundle(widget_view=False)


def test_tune_launcher_builds_the_space_from_its_rows(write_notebook: Write, store: Store) -> None:
    path = write_notebook("form", *TOY)
    launcher = TuneLauncher(path, store=store, seed=2)
    rows = launcher.rows
    assert list(rows) == ["x", "opt", "epochs", "pause", "layers"]
    assert rows["x"].mode.options == ("fixed", "range", "log range", "choices")
    assert rows["opt"].mode.options == ("fixed", "choices")
    assert {n: r.fixed.value for n, r in rows.items()} == {
        "x": 5.0,
        "opt": "sgd",
        "epochs": 3,
        "pause": 0.15,
        "layers": 2,
    }
    assert type(rows["layers"].low).__name__ == "IntText"
    assert type(rows["x"].low).__name__ == "FloatText"
    assert launcher.objective.options == ("loss",) and launcher.objective.value == "loss"
    assert launcher.space() == {}
    assert rows["x"].low.layout.display == "none"  # fixed: only the value is shown

    rows["x"].mode.value = "log range"
    rows["x"].low.value, rows["x"].high.value = 0.01, 10.0
    rows["layers"].mode.value = "range"
    rows["layers"].low.value, rows["layers"].high.value = 1, 3
    rows["opt"].mode.value = "choices"
    rows["opt"].choices.value = "sgd, adam"
    rows["pause"].fixed.value = 0.0
    assert rows["x"].low.layout.display is None and rows["x"].fixed.layout.display == "none"
    assert launcher.space() == {
        "x": kfnb.Float(0.01, 10.0, log=True),
        "opt": kfnb.Choice(["sgd", "adam"]),
        "layers": kfnb.Int(1, 3),
    }
    assert launcher.fixed() == ({"epochs": 3, "pause": 0.0}, [])
    launcher.trials.value = 3
    launcher.parallel.value = 2
    launcher.direction.value = "maximize"
    launcher.start_button.click()
    assert launcher.error.value == ""
    study = launcher.study
    assert isinstance(launcher.study_widget, StudyWidget)
    study.wait(180)
    view = study.view()
    assert view["status"] == "SUCCEEDED"
    assert view["study"]["direction"] == "maximize" and view["study"]["parallel"] == 2
    assert view["study"]["space"] == {
        "x": {"float": [0.01, 10.0], "log": True},
        "opt": {"choice": ["sgd", "adam"]},
        "layers": {"int": [1, 3]},
    }
    assert view["study"]["fixed"] == {"epochs": 3, "pause": 0.0}
    for t in view["trials"]:
        assert 0.01 <= t["params"]["x"] <= 10 and 1 <= t["params"]["layers"] <= 3
    assert len(view["trials"]) == 3
    launcher.study_widget.wait(30)


def test_tune_launcher_shows_bad_input_and_keeps_the_form(
    write_notebook: Write, store: Store
) -> None:
    path = write_notebook("bad", *TOY)
    launcher = TuneLauncher(path, store=store, objective="loss", trials=2)
    x = launcher.rows["x"]
    x.mode.value = "range"
    x.low.value, x.high.value = 8.0, 2.0
    launcher.start_button.click()
    assert "kfnb-error" in launcher.error.value
    assert "'x': low 8.0 is above high 2.0" in launcher.error.value
    assert "Fix:</b> swap them" in launcher.error.value and "Traceback" not in launcher.error.value
    assert launcher.study is None and store.list_runs() == []
    assert (x.mode.value, x.low.value, x.high.value) == ("range", 8.0, 2.0)  # nothing lost
    assert launcher.trials.value == 2 and launcher.objective.value == "loss"

    x.low.value, x.high.value = 2.0, 8.0
    layers = launcher.rows["layers"]
    layers.mode.value = "choices"
    layers.choices.value = "1, two"
    launcher.start_button.click()
    assert "the choices of 'layers'" in launcher.error.value
    assert "'two' is not an int" in launcher.error.value
    assert layers.choices.value == "1, two" and store.list_runs() == []
    layers.mode.value = "log range"
    layers.low.value = 0
    launcher.start_button.click()
    assert "a log scale needs low &gt;= 1" in launcher.error.value
    layers.mode.value = "fixed"
    launcher.objective.value = ""
    launcher.start_button.click()
    assert "a study needs an objective" in launcher.error.value
    assert "the notebook's metrics: loss" in launcher.error.value
    assert store.list_runs() == []


def test_tune_launcher_for_a_function_and_its_defaults() -> None:
    def train(lr: float = 0.1, depth: int = 3, kind: str = "a", flag: bool = True, data=None):
        return lr

    launcher = TuneLauncher(
        train,
        space={"lr": kfnb.Float(1e-3, 1.0, log=True), "kind": kfnb.Choice(["a", "b"])},
        params={"depth": 5},
        objective="score",
        direction="maximize",
        prune="median",
    )
    assert launcher.error.value == ""
    assert list(launcher.rows) == ["lr", "depth", "kind", "flag", "data"]
    assert launcher.rows["lr"].mode.value == "log range"
    assert (launcher.rows["lr"].low.value, launcher.rows["lr"].high.value) == (1e-3, 1.0)
    assert launcher.rows["kind"].choices.value == "a, b"
    assert launcher.rows["data"].mode.options == ("fixed", "range", "log range", "choices")
    assert launcher.rows["flag"].mode.options == ("fixed", "choices")
    assert launcher.rows["depth"].fixed.value == 5
    assert launcher.space() == {
        "lr": kfnb.Float(1e-3, 1.0, log=True),
        "kind": kfnb.Choice(["a", "b"]),
    }
    assert launcher.how()["prune"] == "median" and launcher.how()["direction"] == "maximize"
    launcher.rows["flag"].mode.value = "choices"
    launcher.rows["flag"].choices.value = "true, no"
    assert launcher.space()["flag"] == kfnb.Choice([True, False])
    with pytest.raises(kfnb.KfnbError, match="no setting 'trails'"):
        TuneLauncher(train, trails=3)
    bad = TuneLauncher(train, space={"depth_": kfnb.Int(1, 3)})
    assert "tunes 'depth_', which is no parameter here" in bad.error.value
    untyped = TuneLauncher(train, space={"data": kfnb.Int(1, 4)})  # an untyped argument
    assert untyped.space() == {"data": kfnb.Int(1, 4)}  # keeps its int range
    floats = TuneLauncher(train, space={"depth": kfnb.Float(1.0, 4.0)})
    assert "'depth' is an int, so a float range cannot set it" in floats.error.value


def test_in_a_kernel_a_study_displays_live_and_ends_updated(write_notebook: Write) -> None:
    """A real kernel: a bare ``study`` shows the widget under a display id; when the study
    ends the follower thread sends the final snapshot as ``update_display_data``."""
    from jupyter_client.manager import start_new_kernel

    path = write_notebook("live", *TOY)
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(path.parent))
    try:
        code = (
            f"import kfnb\nstudy = kfnb.tune({str(path)!r}, space={{'x': kfnb.Float(0, 1)}}, "
            "objective='loss', trials=2, params={'pause': 0.0})\nstudy"
        )
        msg_id = kc.execute(code)
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=1)
            except Exception:
                continue
            messages.append(msg)
            if msg["msg_type"] == "update_display_data":
                break
        kinds = [m["msg_type"] for m in messages]
        shown = next(
            m
            for m in messages
            if m["msg_type"] == "display_data" and m["parent_header"].get("msg_id") == msg_id
        )
        data = shown["content"]["data"]
        assert "application/vnd.jupyter.widget-view+json" in data
        assert "kfnb-study-snapshot" in data["text/html"] and "Study live" in data["text/plain"]
        assert "execute_result" not in kinds and "stream" not in kinds  # no output flood
        update = messages[-1]
        assert update["msg_type"] == "update_display_data", kinds
        assert update["content"]["transient"] == shown["content"]["transient"]
        final = update["content"]["data"]["text/html"]
        assert 'data-trial="0" data-status="SUCCEEDED"' in final
        assert 'data-trial="1" data-status="SUCCEEDED"' in final
        assert "kfnb-study-history" in final and "kfnb-study-parallel" in final
        assert "SUCCEEDED, 2 succeeded of 2 trials" in update["content"]["data"]["text/plain"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
