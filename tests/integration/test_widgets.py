"""The notebook widgets on real local runs: RunWidget follows a run from its daemon thread,
RunsTable compares runs, Launcher starts one from a form. No kernel is needed to drive them:
ipywidgets 8 widgets work in plain Python (their comms go nowhere)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from procs import wait_for

import kfnb
from kfnb.tracking import Store
from kfnb.widgets import Launcher, RunsTable, RunWidget

Write = Callable[..., Path]

THREE_STEPS = (
    ("pipeline-parameters", "n = 4\nlr = 0.5"),
    ("step:prepare", "x = n * 2\nprint('prepared', x)"),
    (
        "step:train",
        "import time\nimport kfnb\n"
        "for i in range(n):\n"
        "    kfnb.log_metric('loss', 1.0 / (i + 1) * lr, step=i)\n"
        "    print('epoch', i, flush=True)\n"
        "    time.sleep(0.3)\n"
        "kfnb.log_metric('accuracy', 0.9)\ny = x + 1",
    ),
    ("step:report", "print('report', y)"),
)


def observe(widget: RunWidget, timeout: float = 120) -> list[dict[str, Any]]:
    """The widget's states, looked at every 50 ms until the run ended."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(widget.state())
        if seen[-1]["status"] in ("SUCCEEDED", "FAILED", "CANCELED") and not (
            widget.follower and widget.follower.alive
        ):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"run did not end: {seen[-1]}")


def test_run_widget_follows_a_run(write_notebook: Write, store: Store) -> None:
    path = write_notebook("three", *THREE_STEPS)
    run = kfnb.run(path, store=store, wait=False)
    widget = RunWidget(run, poll=0.1)
    assert widget.follower is not None and widget.follower.alive
    assert "kfnb-RunWidget" in widget._dom_classes
    seen = observe(widget)
    final = seen[-1]
    assert final["status"] == "SUCCEEDED"
    assert final["steps"] == {"prepare": "SUCCEEDED", "train": "SUCCEEDED", "report": "SUCCEEDED"}
    assert final["progress"] == (3, 3)
    # states over time: train ran while report waited; progress moved through values
    assert any(
        s["steps"]["train"] == "RUNNING"
        and s["steps"]["report"] == "PENDING"
        and s["steps"]["prepare"] == "SUCCEEDED"
        for s in seen
    )
    done = [s["progress"][0] for s in seen]
    assert 1 in done and done == sorted(done)
    assert final["series"]["loss"] == [(i, 1.0 / (i + 1) * 0.5) for i in range(4)]
    assert final["metrics"]["accuracy"] == 0.9 and "accuracy" not in final["series"]
    # the log box followed the running step and streamed what it printed
    assert any(
        s["log_step"] == "train" and "epoch 0" in s["log"] and "epoch 3" not in s["log"]
        for s in seen
    )
    widget.step_select.value = "prepare"
    assert widget.state()["log_step"] == "prepare" and "prepared 8" in widget.state()["log"]
    assert final["cancel_disabled"]
    # the DAG: one node per step, coloured by status, with the edges of the pipeline
    svg = widget.dag.value
    for name in ("prepare", "train", "report"):
        assert f'data-step="{name}" data-status="SUCCEEDED"' in svg
    assert 'data-source="prepare" data-target="train"' in svg
    assert 'data-source="train" data-target="report"' in svg
    assert "loss" in widget.plots.value and "<polyline" in widget.plots.value
    assert "accuracy" in widget.metrics_html.value
    # the bundle: widget view + static snapshot + text
    bundle = widget._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == widget.model_id
    for name in ("prepare", "train", "report"):
        assert name in bundle["text/html"]
    assert bundle["text/html"].count("kfnb-status-SUCCEEDED") >= 4  # run + 3 steps
    assert "SUCCEEDED" in bundle["text/plain"] and "train" in bundle["text/plain"]
    widget.close()


def test_the_display_handle_gets_the_final_state(
    write_notebook: Write, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[tuple[str, dict[str, Any]]] = []

    class Handle:
        def update(self, obj: dict[str, Any], raw: bool = False) -> None:
            shown.append(("update", obj))

    def display(obj: dict[str, Any], raw: bool = False, display_id: bool = False) -> Handle:
        assert raw and display_id
        shown.append(("display", obj))
        return Handle()

    monkeypatch.setattr("IPython.display.display", display)
    path = write_notebook("shown", ("step:a", "import time\ntime.sleep(1)"), ("step:b", "z = 1"))
    run = kfnb.run(path, store=store, wait=False)
    widget = RunWidget(run, poll=0.1)
    widget.display()
    widget.wait(120)
    assert [k for k, _ in shown] == ["display", "update"]
    first, last = shown[0][1], shown[1][1]
    assert "kfnb-status-SUCCEEDED" not in first["text/html"].split("kfnb-dag-box")[0]
    assert 'data-step="a" data-status="SUCCEEDED"' in last["text/html"]
    assert 'data-step="b" data-status="SUCCEEDED"' in last["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in last
    assert "SUCCEEDED" in last["text/plain"]


def test_cancel_button_stops_a_long_run(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "long",
        ("step:long", "import time\nfor _ in range(1200):\n    time.sleep(0.1)\nx = 1"),
        ("step:later", "y = x"),
    )
    run = kfnb.run(path, store=store, wait=False)
    widget = RunWidget(run.id, store=Store(store.home), poll=0.1)  # by id: cancels via attach
    wait_for(lambda: widget.state()["steps"]["long"] == "RUNNING", "the step to start")
    assert not widget.cancel_button.disabled
    widget.cancel_button.click()
    run.wait(timeout=60)
    widget.wait(30)
    state = widget.state()
    assert state["status"] == "CANCELED"
    assert state["steps"] == {"long": "CANCELED", "later": "CANCELED"}
    assert widget.cancel_button.disabled
    assert 'data-status="CANCELED"' in widget.dag.value
    assert widget.follower is not None and not widget.follower.alive


def test_a_cached_rerun_shows_cached_steps(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "cached", ("pipeline-parameters", "n = 3"), ("step:a", "x = n * 2"), ("step:b", "y = x + 1")
    )
    kfnb.run(path, store=store)
    again = kfnb.run(path, store=store)
    widget = RunWidget(again)
    assert widget.follower is None  # the run had ended: nothing to follow
    assert widget.state()["steps"] == {"a": "CACHED", "b": "CACHED"}
    assert widget.state()["progress"] == (2, 2)
    assert widget.dag.value.count(">cached</text>") == 2
    html = widget.snapshot_html()
    assert 'data-step="a" data-status="CACHED"' in html and "from " in html


def test_runs_table_compares_runs(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "cmp",
        ("pipeline-parameters", "lr = 0.1\nname = 'x'"),
        ("step:fit", "import kfnb\nkfnb.log_metric('score', lr * 10)"),
    )
    other = write_notebook("other", ("step:a", "z = 1"))
    low = kfnb.run(path, {"lr": 0.1}, store=store)
    high = kfnb.run(path, {"lr": 0.3}, store=store)
    kfnb.run(other, store=store)
    table = RunsTable(path, store=store)
    state = table.state()
    assert [r["id"] for r in state["rows"]] == [high.id, low.id]  # newest first, this notebook
    assert state["columns"] == [
        "id",
        "started",
        "status",
        "duration",
        "backend",
        "param.lr",
        "param.name",
        "metric.score",
    ]
    assert [r["metric.score"] for r in state["rows"]] == pytest.approx([3.0, 1.0])
    table.sort("score", descending=False)
    assert [r["id"] for r in table.state()["rows"]] == [high.id, low.id][::-1]
    assert table.state()["sort"] == ("metric.score", False)
    assert table.table.value.index(low.id) < table.table.value.index(high.id)
    table.descending.value = True
    assert [r["id"] for r in table.state()["rows"]] == [high.id, low.id]
    table.select.value = (low.id, high.id)
    table.metric.value = "score"
    table.plot_button.click()
    plot = table.state()["plot"]
    assert plot["metric"] == "score"
    assert dict(plot["data"]) == pytest.approx({low.id: 1.0, high.id: 3.0})
    assert "kfnb-bar-plot" in table.plot_html.value and low.id in table.plot_html.value
    text = repr(table)
    assert "lr" in text and "score" in text and low.id in text
    assert len(RunsTable(store=store).state()["rows"]) == 3
    newest = kfnb.run(path, {"lr": 0.2}, store=store)
    table.refresh()
    assert [r["id"] for r in table.state()["rows"]] == [high.id, newest.id, low.id]  # by score
    table.sort("started")
    assert table.state()["rows"][0]["id"] == newest.id
    assert table.state()["selected"] == [low.id, high.id]
    bundle = table._repr_mimebundle_()
    assert "kfnb-runs" in bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_kfnb_runs_returns_a_table(write_notebook: Write, store: Store) -> None:
    path = write_notebook("lazy", ("step:a", "z = 1"))
    done = kfnb.run(path, store=store)
    table = kfnb.runs(path, limit=5, store=store)
    assert isinstance(table, RunsTable)
    assert [r["id"] for r in table.state()["rows"]] == [done.id]


def test_launcher_runs_with_the_values_of_the_form(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "form",
        ("pipeline-parameters", "n = 3\nrate = 0.5\nflag = True\nname = 'a'\nsizes = [1, 2]"),
        ("step:a", "total = n + sum(sizes)"),
    )
    launcher = Launcher(path, store=store)
    kinds = {k: type(w).__name__ for k, w in launcher.fields.items()}
    assert kinds == {
        "n": "IntText",
        "rate": "FloatText",
        "flag": "Checkbox",
        "name": "Text",
        "sizes": "Text",
    }
    assert {k: w.value for k, w in launcher.fields.items()} == {
        "n": 3,
        "rate": 0.5,
        "flag": True,
        "name": "a",
        "sizes": "[1, 2]",
    }
    assert launcher.backend.value == "local" and "kfp" in launcher.backend.options
    form = launcher.options.fields  # the local backend's options, typed, hidden ones left out
    assert type(form["max_parallel"]).__name__ == "Text" and form["max_parallel"].value == ""
    assert type(form["cache"]).__name__ == "Checkbox" and form["cache"].value is True
    assert type(form["pool_size"]).__name__ == "IntText" and form["pool_size"].value == 2
    assert "kernel_transport" not in form
    launcher.fields["n"].value = 7
    launcher.fields["sizes"].value = "[10]"
    form["max_parallel"].value = "1"
    form["cache"].value = False
    assert launcher.options.changed() == {"max_parallel": "1", "cache": False}
    launcher.run_button.click()
    assert launcher.error.value == ""
    run = launcher.run
    assert run is not None and isinstance(launcher.run_widget, RunWidget)
    run.wait(120)
    record = store.get_run(run.id)
    assert record.status == "SUCCEEDED"
    assert record.params == {"n": 7, "rate": 0.5, "flag": True, "name": "a", "sizes": [10]}
    launcher.run_widget.wait(30)

    launcher.fields["sizes"].value = "[1, 2"
    launcher.run_button.click()
    assert "kfnb-error" in launcher.error.value and "'sizes'" in launcher.error.value
    assert "Traceback" not in launcher.error.value
    launcher.fields["sizes"].value = '{"a": 1}'  # JSON, but not a list: the pipeline says no
    launcher.run_button.click()
    assert "parameter 'sizes' is a list" in launcher.error.value
    assert len(store.list_runs()) == 1
    launcher.fields["sizes"].value = "[]"
    launcher.run_button.click()
    assert launcher.error.value == "" and launcher.run.id != run.id
    launcher.run.wait(120)
    launcher.run_widget.wait(30)


def test_launcher_shows_a_backend_error(write_notebook: Write, store: Store) -> None:
    path = write_notebook("big", ("step:a", "z = 1"))
    launcher = Launcher(path, store=store)
    launcher.options.fields["max_parallel"].value = "3"
    launcher.backend.value = "kfp"  # no cluster configured: a readable error, not a traceback
    assert "max_parallel" not in launcher.options.fields and "host" in launcher.options.fields
    launcher.run_button.click()
    assert "kfnb-error" in launcher.error.value and "Fix:" in launcher.error.value
    assert "no Kubeflow Pipelines host" in launcher.error.value
    assert launcher.run is None
    launcher.backend.value = "local"
    launcher.options.fields["max_parallel"].value = "many"
    launcher.run_button.click()  # the backend types the value: its own error, in the form
    assert "option 'max_parallel' must be an integer, got 'many'" in launcher.error.value
    assert launcher.run is None and store.list_runs() == []
    broken = write_notebook("broken", ("step:a", "y = undefined_name"))
    bad = Launcher(broken, store=store)
    assert "undefined_name" in bad.error.value and bad.run_button.disabled


def test_outside_a_kernel_a_run_shows_as_text(write_notebook: Write, store: Store) -> None:
    path = write_notebook("plain", ("step:a", "z = 1"))
    run = kfnb.run(path, store=store)
    bundle = run._repr_mimebundle_()
    assert list(bundle) == ["text/plain"]
    assert "SUCCEEDED" in bundle["text/plain"] and run.id in bundle["text/plain"]


def test_import_kfnb_does_not_import_ipywidgets() -> None:
    code = (
        "import sys, kfnb, kfnb.api, kfnb.widgets.dag, kfnb.widgets.snapshot\n"
        "assert 'ipywidgets' not in sys.modules, 'ipywidgets imported'\n"
        "assert callable(kfnb.runs)\nassert 'ipywidgets' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_in_a_kernel_a_run_displays_as_a_widget_and_ends_updated(
    write_notebook: Write, store: Store
) -> None:
    """A real kernel: a bare ``run`` displays the widget under a display id; the follower
    thread sends the final state as ``update_display_data``; _repr_mimebundle_ has all three."""
    from jupyter_client.manager import start_new_kernel

    path = write_notebook("live", ("step:a", "import time\ntime.sleep(1)"), ("step:b", "z = 1"))
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(path.parent))
    try:
        code = (
            f"import kfnb\nrun = kfnb.run({str(path)!r}, wait=False)\n"
            "print(sorted(run._repr_mimebundle_()))\nrun"
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
        assert "application/vnd.jupyter.widget-view+json" in shown["content"]["data"]
        display_id = shown["content"]["transient"]["display_id"]
        assert "execute_result" not in kinds  # the bare expression published nothing else
        printed = "".join(
            m["content"].get("text", "") for m in messages if m["msg_type"] == "stream"
        )
        assert "'application/vnd.jupyter.widget-view+json', 'text/html', 'text/plain'" in printed
        update = messages[-1]
        assert update["msg_type"] == "update_display_data", kinds
        assert update["content"]["transient"]["display_id"] == display_id
        final = update["content"]["data"]["text/html"]
        assert 'data-step="a" data-status="SUCCEEDED"' in final
        assert 'data-step="b" data-status="SUCCEEDED"' in final
        assert any(m["msg_type"] == "comm_msg" for m in messages)  # live trait updates
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_a_remote_run_is_refreshed_through_its_backend(store: Store) -> None:
    """A KFP-like run: the follower calls the handle's refresh() (here it moves the run on),
    the header links to the UI, Cancel reaches the backend's handle."""
    from kfnb import backends
    from kfnb.backends import Backend, StoreRunHandle

    calls: list[str] = []

    class FakeHandle(StoreRunHandle):
        def refresh(self) -> str:
            calls.append("refresh")
            record = self.store.get_run(self.id)
            if record.status == "PENDING":
                self.store.set_run_status(self.id, "RUNNING")
                self.store.set_step_status(self.id, "a", "RUNNING")
            return self.status

        def cancel(self) -> None:
            calls.append("cancel")
            super().cancel()

    @dataclass
    class NoOptions:
        pass

    class FakeRemote(Backend):
        name = "fake-remote"
        config_class = NoOptions

        def submit(self, pipeline: Any, params: Any, store: Store, **_: Any) -> Any:
            raise NotImplementedError

        def attach(self, store: Store, run_id: str) -> FakeHandle:
            return FakeHandle(store, run_id)

    backends.register("fake-remote", FakeRemote)
    try:
        rec = store.create_run(
            kind="pipeline",
            name="remote",
            backend="fake-remote",
            notebook=None,
            notebook_hash=None,
            params={},
            steps=["a"],
            remote={"url": "http://kfp.example/#/runs/details/xyz"},
        )
        widget = RunWidget(rec.id, store=store, poll=0.05)
        wait_for(lambda: widget.state()["steps"]["a"] == "RUNNING", "the refresh to apply")
        assert calls.count("refresh") == 1  # at most every 5 s
        assert "Open in the KFP UI" in widget.link.value
        assert "http://kfp.example/#/runs/details/xyz" in widget.link.value
        widget.cancel_button.click()
        assert "cancel" in calls and store.is_cancel_requested(rec.id)
        widget.close()
        assert widget.follower is not None
        widget.follower.join(5)
        assert not widget.follower.alive  # closing the widget stops its thread
    finally:
        backends.unregister("fake-remote")
