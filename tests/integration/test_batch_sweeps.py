"""Parameter sweeps for real: each set a pipeline run on real kernels under one batch run,
read back from the run store; the ``kfnb batch`` command; the live widget's table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import kfnb
from kfnb.batching.sets import SetError
from kfnb.cli import main
from kfnb.tracking import Store

Write = Callable[..., Path]

PARAMS = ("pipeline-parameters", "x = 1\nmode = 'a'")


def steps_of(store: Store, run_id: str) -> dict[str, str]:
    return {s.name: s.status for s in store.get_run(run_id).steps}


def shared_notebook(write_notebook: Write, marks: Path) -> Path:
    return write_notebook(
        "sweep",
        PARAMS,
        ("step:load", f"open({str(marks)!r}, 'a').write('load\\n')\nbase = 10"),
        ("step:fit", "score = base + x * (2 if mode == 'b' else 1)"),
        ("pipeline-metrics", "print(score)"),
    )


def test_a_sweep_shares_the_step_no_set_changes(
    write_notebook: Write, store: Store, tmp_path: Path
) -> None:
    marks = tmp_path / "loads.txt"
    path = shared_notebook(write_notebook, marks)
    batch = kfnb.batch(
        path, grid={"x": [1, 2, 3], "mode": ["a", "b"]}, max_parallel=3, store=store, wait=True
    )
    view = batch.view()
    assert view["status"] == "SUCCEEDED", view
    assert view["counts"]["SUCCEEDED"] == 6
    loads = [steps_of(store, row["run"])["load"] for row in view["sets"]]
    assert sorted(loads) == ["CACHED"] * 5 + ["SUCCEEDED"]
    assert marks.read_text() == "load\n"  # computed once
    # one batch run, its children the six pipeline runs
    tree = store.tree(batch.id)
    assert tree.run.kind == "batch" and len(tree.children) == 6
    assert {c.run.kind for c in tree.children} == {"pipeline"}
    frame = batch.results()
    assert list(frame.columns[:4]) == ["set", "x", "mode", "status"]
    expected = [10 + x * (2 if m == "b" else 1) for x in (1, 2, 3) for m in "ab"]
    assert list(frame["score"]) == expected
    assert set(frame["status"]) == {"SUCCEEDED"}
    assert all(Path(p).name == "executed" for p in frame["notebooks"])
    assert batch.to_csv().splitlines()[0].startswith("set,x,mode,status,score,run")

    from kfnb.widgets import BatchWidget

    widget = BatchWidget(batch)
    state = widget.state()
    assert state["status"] == "SUCCEEDED" and state["cancel_disabled"]
    assert [(s[0], s[1], s[3]["score"]) for s in state["sets"]] == [
        (i, "SUCCEEDED", v) for i, v in enumerate(expected)
    ]
    html, text = widget.static()
    assert html.count('class="kfnb-set-row"') == 6 and "6/6 sets" in html
    assert "Batch sweep" in text
    widget.close()


def test_a_bad_set_is_an_error_and_nothing_runs(write_notebook: Write, store: Store) -> None:
    path = write_notebook("bad", PARAMS, ("step:fit", "y = x"))
    with pytest.raises(SetError, match=r"'lr'.*x, mode"):
        kfnb.batch(path, sets=[{"x": 1}, {"lr": 0.1}], store=store)
    with pytest.raises(SetError, match="parameter 'x' is an int"):
        kfnb.batch(path, grid={"x": [1, "two"]}, store=store)
    assert store.list_runs(limit=None) == []


def test_a_failing_set_fails_the_batch_and_resume_runs_only_it(
    write_notebook: Write, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = tmp_path / "broken"
    flag.write_text("")
    path = write_notebook(
        "flaky",
        PARAMS,
        (
            "step:fit",
            f"import os\nassert not (x == 2 and os.path.exists({str(flag)!r})), 'set 2 broke'\n"
            "score = x * 10",
        ),
        ("pipeline-metrics", "print(score)"),
    )
    sets = tmp_path / "sets.csv"
    sets.write_text("x,mode\n1,a\n2,b\n3,c\n")
    assert main(["batch", str(path), "--sets", str(sets), "--max-parallel", "2"]) == 1
    out = capsys.readouterr().out
    assert "set 1: x=2 mode=b  failed: step 'fit' failed" in out
    batch_id = out.split()[2].rstrip(":")
    record = store.get_run(batch_id)
    assert record.kind == "batch" and record.status == "FAILED"
    assert "1 of 3 sets failed (set 1" in (record.error or "")
    first = {c.params["x"]: (c.id, c.status) for c in store.children(batch_id)}
    assert {x: s for x, (_, s) in first.items()} == {1: "SUCCEEDED", 2: "FAILED", 3: "SUCCEEDED"}

    flag.unlink()
    assert main(["batch", "--resume", batch_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "SUCCEEDED" and shown["kind"] == "batch"
    assert [
        (r["params"], r["status"], r["metrics"]["score"], r["runs"]) for r in shown["sets"]
    ] == [
        ({"x": 1, "mode": "a"}, "SUCCEEDED", 10, 1),
        ({"x": 2, "mode": "b"}, "SUCCEEDED", 20, 2),
        ({"x": 3, "mode": "c"}, "SUCCEEDED", 30, 1),
    ]
    children = store.children(batch_id)
    assert len(children) == 4  # only the failed set ran again
    assert shown["sets"][0]["run"] == first[1][0] and shown["sets"][2]["run"] == first[3][0]

    assert main(["runs", "--kind", "batch"]) == 0
    assert batch_id in capsys.readouterr().out
    assert main(["show", batch_id]) == 0
    shown_text = capsys.readouterr().out
    assert f"Batch flaky ({batch_id}): SUCCEEDED" in shown_text
    assert all(c.id in shown_text for c in children)


def test_the_cli_writes_results_in_each_format(
    write_notebook: Write, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_notebook(
        "cli",
        PARAMS,
        ("step:fit", "score = x + 0.5"),
        ("pipeline-metrics", "print(score)"),
    )
    grid = tmp_path / "sweep.yaml"
    grid.write_text("- {x: [1, 2]}\n- {x: [5], mode: [z]}\n")
    for suffix in ("csv", "json", "md"):
        target = tmp_path / f"results.{suffix}"
        code = main(
            ["batch", str(path), "--grid", str(grid), "-p", "mode", "q", "--output", str(target)]
            if suffix != "md"
            else ["batch", str(path), "--grid", str(grid), "--output", str(target)]
        )
        out = capsys.readouterr().out
        if suffix == "md":
            assert code == 0, out
            lines = target.read_text().splitlines()
            assert lines[0] == "| set | status | x | mode | score | run |"
            assert lines[4].startswith("| 2 | succeeded | 5 | z | 5.5 |")
            continue
        # mode is both fixed (-p) and swept by the second grid: refused before anything runs
        assert code == 2
        assert not target.exists()
    grid.write_text("x: [1, 2]\n")
    for suffix in ("csv", "json"):
        target = tmp_path / f"results.{suffix}"
        assert (
            main(["batch", str(path), "--grid", str(grid), "-p", "mode", "q", "-o", str(target)])
            == 0
        )
        assert "Batch cli" in capsys.readouterr().out
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert rows[0].startswith("set,x,status,score,run")
    assert rows[1].startswith("0,1,SUCCEEDED,1.5,") and rows[2].startswith("1,2,SUCCEEDED,2.5,")
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["metrics"]["score"] for r in data["sets"]] == [1.5, 2.5]
    assert data["batch"]["fixed"] == {"mode": "q"}
    assert main(["batch", str(path), "--grid", str(grid), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kind"] == "batch" and [r["status"] for r in shown["sets"]] == ["SUCCEEDED"] * 2


def test_a_set_whose_kernel_died_runs_again(
    write_notebook: Write, store: Store, tmp_path: Path
) -> None:
    flag = tmp_path / "die-once"
    flag.write_text("")
    path = write_notebook(
        "dies",
        PARAMS,
        (
            "step:fit",
            f"import os\nif x == 2 and os.path.exists({str(flag)!r}):\n"
            f"    os.remove({str(flag)!r})\n    os._exit(1)\nscore = x",
        ),
        ("pipeline-metrics", "print(score)"),
    )
    batch = kfnb.batch(path, grid={"x": [1, 2]}, store=store, wait=True)
    view = batch.view()
    assert view["status"] == "SUCCEEDED", view
    assert [(r["status"], r["runs"]) for r in view["sets"]] == [("SUCCEEDED", 1), ("SUCCEEDED", 2)]


def test_retry_failed_runs_a_failing_set_again(
    write_notebook: Write, store: Store, tmp_path: Path
) -> None:
    flag = tmp_path / "fail-once"
    flag.write_text("")
    path = write_notebook(
        "once",
        PARAMS,
        (
            "step:fit",
            f"import os\nif os.path.exists({str(flag)!r}):\n"
            f"    os.remove({str(flag)!r})\n    raise ValueError('once')\nscore = x",
        ),
    )
    plain = kfnb.batch(path, sets=[{"x": 1}], store=store, wait=True)
    assert [(r["status"], r["runs"]) for r in plain.sets] == [("FAILED", 1)]  # code: no retry
    flag.write_text("")
    asked = kfnb.batch(path, sets=[{"x": 1}], retry_failed=True, store=store, wait=True)
    assert [(r["status"], r["runs"]) for r in asked.sets] == [("SUCCEEDED", 2)]


def test_cancel_from_the_widget_then_resume(
    write_notebook: Write, store: Store, tmp_path: Path
) -> None:
    import time

    flag = tmp_path / "slow"
    flag.write_text("")
    path = write_notebook(
        "slow",
        PARAMS,
        ("step:fit", f"import os, time\nwhile os.path.exists({str(flag)!r}):\n    time.sleep(0.1)"),
        ("step:done", "score = x"),
        ("pipeline-metrics", "print(score)"),
    )
    batch = kfnb.batch(path, grid={"x": [1, 2]}, max_parallel=1, store=store)
    from kfnb.widgets import BatchWidget

    widget = BatchWidget(batch, poll=0.1)
    deadline = time.monotonic() + 60
    while widget.state()["counts"]["RUNNING"] != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not widget.state()["cancel_disabled"]
    widget.cancel()  # what Cancel does
    batch.wait(60)
    view = widget.wait(30)
    assert view["status"] == "CANCELED", view
    assert [r["status"] for r in view["sets"]] == ["CANCELED", "PENDING"]
    assert widget.state()["cancel_disabled"]
    widget.close()

    flag.unlink()
    batch.resume().wait(60)
    view = batch.view()
    assert view["status"] == "SUCCEEDED", view
    assert [(r["status"], r["runs"], r["metrics"]) for r in view["sets"]] == [
        ("SUCCEEDED", 2, {"score": 1}),
        ("SUCCEEDED", 1, {"score": 2}),
    ]
