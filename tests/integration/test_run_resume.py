"""``kfnb run --resume RUN``: a new run that reuses the steps RUN finished and runs the others."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

import kfnb
from kfnb.api import NothingToResume
from kfnb.errors import KfnbError
from kfnb.tracking import Run, Store

Write = Callable[..., Path]
KFNB = str(Path(sys.executable).with_name("kfnb"))

# check needs fixed.txt (beside the notebook: steps run there); side does not depend on check
CELLS = (
    ("pipeline-parameters", "n = 3"),
    ("step:load", "x = n * 2"),
    ("step:check", "import pathlib\nok = pathlib.Path('fixed.txt').read_text().strip()\ny = x + 1"),
    ("step:report", "z = y * 10\nprint(ok, z)"),
    ("step:side", "w = x - 1\nprint('w', w)"),
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KFNB, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )


def statuses(run: Run) -> dict[str, str]:
    return {s.name: s.status for s in run.steps}


def failed_run(path: Path, store: Store, *flags: str) -> Run:
    done = cli("run", str(path), "-p", "n", "5", *flags)
    assert done.returncode == 1, done.stdout + done.stderr
    old = store.get_run(store.list_runs(limit=1)[0].id)
    assert statuses(old) == {
        "load": "SUCCEEDED",
        "check": "FAILED",
        "report": "SKIPPED",
        "side": "SUCCEEDED",
    }
    return old


def test_resume_reruns_only_the_failed_step_and_its_dependents(
    write_notebook: Write, store: Store
) -> None:
    path = write_notebook("resume", *CELLS)
    old = failed_run(path, store)
    (path.parent / "fixed.txt").write_text("fixed\n")

    done = cli("run", "--resume", old.id[:8], "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resuming run {old.id[:8]} as run" in done.stderr
    new = store.get_run(json.loads(done.stdout)["id"])
    assert new.id != old.id and new.status == "SUCCEEDED"
    assert (new.spec or {}).get("resumed_from") == old.id
    assert new.params == old.params == {"n": 5}
    assert new.notebook == old.notebook
    assert statuses(new) == {
        "load": "CACHED",
        "check": "SUCCEEDED",
        "report": "SUCCEEDED",
        "side": "CACHED",
    }
    # the steps that succeeded were reused from the old run, not executed again
    assert {s.name: s.cached_from for s in new.steps if s.status == "CACHED"} == {
        "load": f"{old.id}/load",
        "side": f"{old.id}/side",
    }
    run = kfnb.get_run(new.id, store=store)
    assert run.outputs("load") == {"x": 10}
    assert run.outputs("check") == {"ok": "fixed", "y": 11}
    assert "fixed 110" in run.logs("report")
    # the old run is as it was
    assert statuses(store.get_run(old.id))["check"] == "FAILED"


def test_resume_reuses_succeeded_steps_with_the_cache_off(
    write_notebook: Write, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_notebook("nocache", *CELLS, metadata={"kfnb": {"steps_defaults": ["cache:off"]}})
    old = failed_run(path, store, "--no-cache")
    (path.parent / "fixed.txt").write_text("ok\n")
    # the notebook changes after the failure: side's code (so side runs again), not load's
    nb = nbformat.read(path, as_version=4)
    nb.cells[4].source = "w = x - 2\nprint('w', w)"
    nbformat.write(nb, path)

    new = kfnb.get_run(old.id, store=store).resume(cache=False)
    assert new.status == "SUCCEEDED", new.record.to_dict()
    assert "changed since run" in capsys.readouterr().err
    assert {s.name: s.status for s in new.steps} == {
        "load": "CACHED",
        "check": "SUCCEEDED",
        "report": "SUCCEEDED",
        "side": "SUCCEEDED",
    }
    assert new.record.step("load").cached_from == f"{old.id}/load"
    assert "w 8" in new.logs("side")
    assert (new.record.spec or {}).get("resumed_from") == old.id


def test_nothing_to_resume_in_a_run_that_succeeded(write_notebook: Write, store: Store) -> None:
    path = write_notebook("fine", ("step:a", "x = 1"), ("step:b", "y = x + 1"))
    ok = kfnb.run(path, store=store, pool_size=0)
    assert ok.status == "SUCCEEDED"
    done = cli("run", "--resume", ok.id)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing to resume" in done.stderr
    assert len(store.list_runs(limit=10)) == 1  # no new run
    with pytest.raises(NothingToResume):
        kfnb.run(resume=ok.id, store=store)
    with pytest.raises(KfnbError, match="parameters of run"):
        kfnb.run(resume=ok.id, store=store, params={"x": 2})
    assert cli("run").returncode == 2  # neither NOTEBOOK nor --resume


def test_a_remote_run_cannot_be_resumed(store: Store) -> None:
    remote = store.create_run(
        kind="pipeline",
        name="far",
        backend="kfp",
        notebook="/nowhere/far.ipynb",
        notebook_hash=None,
        params={},
        remote={"host": "http://kfp.example", "run_id": "r-1"},
    )
    with pytest.raises(KfnbError, match="only local runs can be resumed"):
        kfnb.run(resume=remote.id, store=store)
