"""Local studies for real: Optuna asks, each trial is a pipeline run on real kernels (or a
training job), and everything is read back from the run store."""

from __future__ import annotations

import json
import linecache
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from procs import alive, wait_for

import kfnb
from kfnb.tracking import Store
from kfnb.tuning import SpaceError, Study

Write = Callable[..., Path]
KFNB = str(Path(sys.executable).with_name("kfnb"))

PARAMS = ("pipeline-parameters", "x = 1\nrate = 0.5\nmode = 'a'")


def child_steps(store: Store, study: Study) -> list[dict[str, str]]:
    """Step states of every trial's pipeline run."""
    out = []
    for row in study.trials:
        if row["run"]:
            out.append({s.name: s.status for s in store.get_run(row["run"]).steps})
    return out


def test_a_grid_study_finds_the_known_optimum(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "grid",
        PARAMS,
        ("step:fit", "score = -(x - 4) ** 2 + (1 if mode == 'b' else 0)"),
        ("pipeline-metrics", "print(score)"),
    )
    study = kfnb.tune(
        path,
        space={"x": kfnb.Int(0, 6), "mode": kfnb.Choice(["a", "b"])},
        objective="score",
        direction="maximize",
        algorithm="grid",
        trials=100,  # more than the grid: the study ends with the grid
        parallel=4,
        store=store,
        wait=True,
    )
    view = study.view()
    assert view["status"] == "SUCCEEDED", view
    assert view["counts"]["SUCCEEDED"] == 14
    assert study.best_params == {"x": 4, "mode": "b"}
    assert study.best_value == 1
    seen = sorted((t["params"]["x"], t["params"]["mode"]) for t in study.trials)
    assert seen == sorted((x, m) for x in range(7) for m in "ab")
    frame = study.trials_dataframe()
    assert list(frame.sort_values("number")["params_x"]) == [t["params"]["x"] for t in study.trials]
    assert set(frame["state"]) == {"SUCCEEDED"}
    # each trial is a trial run under the study, its pipeline run under the trial
    tree = store.tree(study.id)
    assert {c.run.kind for c in tree.children} == {"trial"}
    assert all([g.run.kind for g in c.children] == ["pipeline"] for c in tree.children)


def test_steps_that_read_no_tuned_parameter_run_once_for_the_whole_study(
    write_notebook: Write, store: Store, tmp_path: Path
) -> None:
    marks = tmp_path / "loads.txt"
    path = write_notebook(
        "shared",
        PARAMS,
        (
            "step:load",
            f"import time\ntime.sleep(0.5)\nopen({str(marks)!r}, 'a').write('x')\n"
            "data = list(range(10))",
        ),
        ("step:clean", "import time\ntime.sleep(0.3)\ndata = [d * 2 for d in data]"),
        ("step:fit", "score = sum(data) * rate - x"),
        ("step:report", "final = score"),
        ("pipeline-metrics", "print(final)"),
    )
    study = kfnb.tune(
        path,
        space={"rate": kfnb.Float(0.0, 1.0), "x": kfnb.Int(0, 3)},
        objective="final",
        direction="maximize",
        trials=6,
        parallel=3,
        seed=7,
        store=store,
        wait=True,
    )
    assert study.status == "SUCCEEDED", study.view()
    states = child_steps(store, study)
    assert len(states) == 6
    loads = [s["load"] for s in states]
    assert loads.count("SUCCEEDED") == 1 and loads.count("CACHED") == 5, loads
    cleans = [s["clean"] for s in states]  # a second shared step, after the first
    assert cleans.count("SUCCEEDED") == 1 and cleans.count("CACHED") == 5, cleans
    assert all(s["fit"] == "SUCCEEDED" and s["report"] == "SUCCEEDED" for s in states)
    assert marks.read_text() == "x"  # the data step's code ran once
    for row in study.trials:  # and each trial's value is its own
        expected = 90 * row["params"]["rate"] - row["params"]["x"]
        assert row["value"] == pytest.approx(expected)


def test_a_pruned_trial_is_pruned_and_its_kernel_is_gone(
    write_notebook: Write, store: Store, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    path = write_notebook(
        "prune",
        PARAMS,
        (
            "step:train",
            "import os, time\nimport kfnb\n"
            f"open(os.path.join({str(pids)!r}, str(os.getpid())), 'w').close()\n"
            "for i in range(30):\n"
            "    loss = x + 1.0 / (i + 1)\n"
            "    kfnb.log_metric('loss', loss, step=i)\n"
            "    time.sleep(0.15)\n",
        ),
        ("pipeline-metrics", "print(loss)"),
    )
    study = kfnb.tune(
        path,
        space={"x": kfnb.Int(0, 9)},
        objective="loss",
        direction="minimize",
        trials=3,
        parallel=1,
        prune=kfnb.Median(startup_trials=2, warmup_steps=2),
        initial=[{"x": 0}, {"x": 1}, {"x": 9}],
        store=store,
        wait=True,
    )
    rows = {t["params"]["x"]: t for t in study.trials}
    assert [rows[x]["status"] for x in (0, 1)] == ["SUCCEEDED", "SUCCEEDED"]
    pruned = rows[9]
    assert pruned["status"] == "PRUNED", pruned
    assert pruned["value"] is None
    steps = [s for s, _ in pruned["intermediate"]]
    assert 2 <= max(steps) < 29, steps  # stopped soon after the warm-up, long before the end
    child = store.get_run(pruned["run"])
    assert child.status == "CANCELED"
    assert study.view()["counts"]["PRUNED"] == 1
    assert study.best_params == {"x": 0}
    kernels = [int(p.name) for p in pids.iterdir()]
    assert len(kernels) == 3
    for pid in kernels:  # every trial's kernel is gone, the pruned one's included
        wait_for(lambda pid=pid: not alive(pid), f"kernel {pid} to end")


SLOW = (
    "step:fit",
    "import time\ntime.sleep(0.8)\nscore = -(x - 2) ** 2",
)


def test_a_stopped_study_keeps_its_finished_trials_and_resumes(
    write_notebook: Write, store: Store
) -> None:
    path = write_notebook("stop", PARAMS, SLOW, ("pipeline-metrics", "print(score)"))
    study = kfnb.tune(
        path,
        space={"x": kfnb.Int(0, 5)},
        objective="score",
        direction="maximize",
        trials=6,
        parallel=2,
        seed=1,
        store=store,
    )
    wait_for(lambda: study.view()["counts"]["SUCCEEDED"] >= 2, "two trials to finish", 120)
    study.stop()
    study.wait(timeout=60)
    stopped = study.view()
    assert stopped["status"] == "CANCELED"
    kept = {t["id"]: (t["status"], t["value"]) for t in stopped["trials"] if t["value"] is not None}
    assert len(kept) >= 2
    assert all(t["status"] in ("SUCCEEDED", "CANCELED") for t in stopped["trials"])

    study.resume().wait(timeout=120)
    done = study.view()
    assert done["status"] == "SUCCEEDED", done
    for row in done["trials"]:
        if row["id"] in kept:
            assert (row["status"], row["value"]) == kept[row["id"]]
    counted = [
        t
        for t in done["trials"]
        if t["status"] == "SUCCEEDED" and not store.get_run(t["id"]).spec["trial"].get("retried")
    ]
    assert len(counted) == 6
    canceled = [t for t in stopped["trials"] if t["status"] == "CANCELED"]
    redone = [
        t["params"] for t in done["trials"] if t["id"] not in {r["id"] for r in stopped["trials"]}
    ]
    for row in canceled:  # a trial the stop cut short runs again with its parameters
        assert row["params"] in redone


def test_a_killed_runner_leaves_its_trials_and_the_study_resumes(
    write_notebook: Write, store: Store, kfnb_home: Path
) -> None:
    path = write_notebook("kill", PARAMS, SLOW, ("pipeline-metrics", "print(score)"))
    env = {**os.environ, "KFNB_HOME": str(kfnb_home)}
    proc = subprocess.Popen(
        [KFNB, "tune", str(path), "--space", str(_space(path)), "--objective", "score",
         "--maximize", "--trials", "5", "--parallel", "2", "--seed", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:

        def studies() -> list[str]:
            return [r.id for r in store.list_runs(kind="tune")]

        wait_for(lambda: bool(studies()), "the study to be recorded", 60)
        sid = studies()[0]
        wait_for(
            lambda: sum(c.status == "SUCCEEDED" for c in store.children(sid)) >= 2,
            "two trials to finish",
            120,
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    store.recover()
    lost = store.get_run(sid)
    assert lost.status == "FAILED"
    before = {c.id: c.metrics.get("score") for c in store.children(sid) if c.status == "SUCCEEDED"}

    resumed = subprocess.run(
        [KFNB, "tune", "--resume", sid, "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    view = json.loads(resumed.stdout)
    assert view["status"] == "SUCCEEDED"
    after = {t["id"]: t for t in view["trials"]}
    for tid, value in before.items():
        assert after[tid]["status"] == "SUCCEEDED" and after[tid]["value"] == value
    finished = [t for t in view["trials"] if t["status"] == "SUCCEEDED"]
    retried = [t for t in view["trials"] if store.get_run(t["id"]).spec["trial"].get("retried")]
    assert len(finished) - sum(t["status"] == "SUCCEEDED" for t in retried) == 5
    assert view["best"]["value"] <= 0


def _space(notebook: Path) -> Path:
    path = notebook.with_name("space.yaml")
    path.write_text(
        "- name: x\n  parameterType: int\n  feasibleSpace: {min: '0', max: '5'}\n"
    )  # Katib's form, as Kale's katib_metadata holds it
    return path


def test_a_space_that_does_not_fit_the_notebook_is_a_clear_error(
    write_notebook: Write, store: Store
) -> None:
    metrics = ("pipeline-metrics", "print(score)")
    path = write_notebook("bad", PARAMS, ("step:s", "score = x"), metrics)
    with pytest.raises(SpaceError) as err:
        kfnb.tune(path, space={"lr": kfnb.Float(0.1, 1)}, objective="score", store=store)
    assert "'lr'" in err.value.message and "pipeline 'bad' has no parameter" in err.value.message
    assert "x, rate, mode" in (err.value.fix or "")
    with pytest.raises(SpaceError) as typed:
        kfnb.tune(path, space={"x": kfnb.Float(0.1, 1)}, objective="score", store=store)
    assert "'x' is an int (default 1)" in typed.value.message
    assert "kfnb.Int(1, 1)" in (typed.value.fix or "")
    with pytest.raises(SpaceError) as choice:
        kfnb.tune(path, space={"mode": kfnb.Choice(["a", 2])}, objective="score", store=store)
    assert "'mode' holds 2" in choice.value.message
    with pytest.raises(SpaceError, match="needs an objective"):
        kfnb.tune(path, space={"x": kfnb.Int(0, 3)}, store=store)
    assert store.list_runs() == []  # nothing was recorded, nothing started


def test_kales_katib_metadata_is_the_study(write_notebook: Write, store: Store) -> None:
    meta = {
        "kubeflow_notebook": {
            "katib_run": True,
            "katib_metadata": {
                "objective": {"objectiveMetricName": "score", "type": "maximize"},
                "algorithm": {"algorithmName": "grid"},
                "maxTrialCount": 10,
                "parallelTrialCount": 2,
                "parameters": [
                    {"name": "x", "parameterType": "int",
                     "feasibleSpace": {"min": "1", "max": "3"}},
                    {"name": "mode", "parameterType": "categorical",
                     "feasibleSpace": {"list": ["a", "b"]}},
                ],
            },
        }
    }  # fmt: skip
    path = write_notebook(
        "kale",
        PARAMS,
        ("step:s", "score = x * (2 if mode == 'b' else 1)"),
        ("pipeline-metrics", "print(score)"),
        metadata=meta,
    )
    study = kfnb.tune(path, store=store, wait=True)
    view = study.view()
    assert view["study"]["objective"] == "score"
    assert view["study"]["direction"] == "maximize"
    assert view["study"]["parallel"] == 2
    assert view["counts"]["SUCCEEDED"] == 6  # the whole grid, less than maxTrialCount
    assert study.best_params == {"x": 3, "mode": "b"}


def test_a_training_function_is_tuned_with_training_jobs(store: Store) -> None:
    fit = _notebook_function(
        "import kfnb\n\n\ndef fit(lr: float, scale: float = 1.0):\n"
        "    kfnb.log_metric('loss', scale * (lr - 0.3) ** 2)\n",
        "fit",
    )
    study = kfnb.tune(
        fit,
        space={"lr": kfnb.Choice([0.1, 0.3, 0.5])},
        params={"scale": 2.0},
        objective="loss",
        algorithm="grid",
        trials=3,
        parallel=3,
        store=store,
        wait=True,
    )
    view = study.view()
    assert view["status"] == "SUCCEEDED", view
    assert study.best_params == {"lr": 0.3}
    assert study.best_value == pytest.approx(0.0)
    kinds = {c.kind for t in study.trials for c in store.children(t["id"])}
    assert kinds == {"train"}
    losses = sorted(round(t["value"], 6) for t in study.trials)
    assert losses == [0.0, pytest.approx(0.08), pytest.approx(0.08)]
    with pytest.raises(SpaceError, match="fit\\(\\) needs 'lr', which neither the space"):
        kfnb.tune(fit, space={"scale": kfnb.Float(1, 2)}, objective="loss", store=store)


def _notebook_function(source: str, name: str) -> Any:
    """A function defined as a notebook cell defines it (its source in ``linecache``)."""
    filename = f"<ipython-input-{abs(hash(source))}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


def test_the_cli_tunes_a_notebook_and_show_prints_the_trials(
    write_notebook: Write, kfnb_home: Path
) -> None:
    path = write_notebook(
        "cli", PARAMS, ("step:s", "score = -abs(x - 2)"), ("pipeline-metrics", "print(score)")
    )
    env = {**os.environ, "KFNB_HOME": str(kfnb_home)}
    space = path.with_name("short.yaml")
    space.write_text("x: {int: [0, 4]}\n")
    done = subprocess.run(
        [KFNB, "tune", str(path), "--space", str(space), "--objective", "score", "--maximize",
         "--algorithm", "grid", "--trials", "5", "--parallel", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "best: score=0 (trial" in done.stdout and "x=2" in done.stdout
    assert done.stdout.count("✓ trial ") == 5
    sid = done.stdout.split("started study ")[1].split()[0]
    listed = subprocess.run(
        [KFNB, "runs", "--kind", "tune"], env=env, capture_output=True, text=True, timeout=60
    )
    assert sid in listed.stdout
    shown = subprocess.run([KFNB, "show", sid], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "5 succeeded of 5 trials" in shown.stdout
    assert "maximize score with grid" in shown.stdout
    bad = subprocess.run(
        [KFNB, "tune", str(path), "--space", str(space), "--objective", "score", "--trials", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0 and "--trials: 0 trials: give 1 to 1000000" in bad.stderr


def test_run_best_finds_a_relative_notebook_from_another_folder(
    write_notebook: Write, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_notebook(
        "rel", PARAMS, ("step:fit", "score = x * 2"), ("pipeline-metrics", "print(score)")
    )
    monkeypatch.chdir(path.parent)
    study = kfnb.tune(
        path.name,  # relative to the folder the study starts in
        space={"x": kfnb.Int(1, 3)},
        objective="score",
        direction="maximize",
        algorithm="grid",
        trials=3,
        parallel=3,
        store=store,
        wait=True,
    )
    assert study.best_params == {"x": 3}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a notebook moves on to another folder
    best = study.run_best(wait=True)
    assert best.status == "SUCCEEDED"
    assert best.params["x"] == 3
