"""The step cache of the local backend: unchanged steps are not run again, changed ones are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from procs import wait_for

import kfnb
from kfnb.api import PipelineRun
from kfnb.kernels import PoolConfig, shared_pool
from kfnb.tracking import Store

Write = Callable[..., Path]
KFNB = str(Path(sys.executable).with_name("kfnb"))


def statuses(run: PipelineRun) -> dict[str, str]:
    return {s.name: s.status for s in run.steps}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KFNB, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )


def test_an_unchanged_pipeline_is_served_from_the_cache(
    write_notebook: Write, store: Store
) -> None:
    path = write_notebook(
        "same",
        ("pipeline-parameters", "n = 3"),
        ("step:a", "x = n * 2"),
        ("step:b", "y = x + 1"),
        ("pipeline-metrics", "print(y)"),
    )
    first = kfnb.run(path, store=store, pool_size=0)
    assert first.status == "SUCCEEDED", first.record.to_dict()
    pool = shared_pool(PoolConfig(size=0))  # the pool the first run took its kernels from
    wait_for(
        lambda: pool.stats()["starting"] == 0 and pool.stats()["ready"] >= pool.config.size,
        "the kernel pool to settle",
    )
    started = pool.stats()["started"]

    second = kfnb.run(path, store=store, pool_size=0)
    assert second.status == "SUCCEEDED", second.record.to_dict()
    assert statuses(second) == {"a": "CACHED", "b": "CACHED"}
    assert {s.name: s.cached_from for s in second.steps} == {
        "a": f"{first.id}/a",
        "b": f"{first.id}/b",
    }
    assert [s.hash for s in second.steps] == [s.hash for s in first.steps]
    assert second.outputs("a") == first.outputs("a") == {"x": 6}
    assert second.outputs("b") == first.outputs("b") == {"y": 7}
    assert second.metrics == {"y": 7.0}
    assert [m.value for m in store.metrics(second.id, "y")] == [7.0]
    for step in ("a", "b"):
        assert "cached" in second.logs(step)
        assert first.id in second.logs(step)
        executed = second.record.step(step).output_notebook
        assert executed is not None and Path(executed).exists()
    # no kernel was started, nor asked for
    assert second.handle.scheduler.kernels is None  # type: ignore[union-attr]
    third = kfnb.run(path, store=store, pool_size=0)  # served by the second run's CACHED steps
    assert {s.name: s.cached_from for s in third.steps} == {
        "a": f"{first.id}/a",
        "b": f"{first.id}/b",
    }
    assert third.outputs("b") == {"y": 7}
    assert pool.stats()["started"] == started
    # the outputs are the first run's files, linked, not copied
    for f in (Path(first.record.artifacts_dir) / "data" / "a").iterdir():
        assert f.samefile(Path(second.record.artifacts_dir) / "data" / "a" / f.name)


def test_a_changed_step_runs_again_with_its_downstream(write_notebook: Write, store: Store) -> None:
    cells = [("step:b", "y = x + 1"), ("step:c", "z = 5"), ("pipeline-metrics", "print(y)")]
    path = write_notebook("changed", ("step:a", "x = 1"), *cells)
    first = kfnb.run(path, store=store, pool_size=0)
    assert first.status == "SUCCEEDED", first.record.to_dict()
    write_notebook("changed", ("step:a", "x = 2"), *cells)  # only a's code changes
    second = kfnb.run(path, store=store, pool_size=0)
    assert second.status == "SUCCEEDED", second.record.to_dict()
    assert statuses(second) == {"a": "SUCCEEDED", "b": "SUCCEEDED", "c": "CACHED"}
    assert second.record.step("c").cached_from == f"{first.id}/c"
    assert second.record.step("b").cached_from is None
    assert second.outputs("b") == {"y": 3} and second.metrics == {"y": 3.0}


def test_a_changed_parameter_runs_only_the_steps_that_read_it(
    write_notebook: Write, store: Store
) -> None:
    path = write_notebook(
        "params",
        ("pipeline-parameters", "n = 1\nm = 1"),
        ("step:a", "x = n * 10"),
        ("step:b", "y = m * 10"),
        ("step:c", "z = x + 1"),
        ("pipeline-metrics", "print(y)\nprint(z)"),
    )
    first = kfnb.run(path, {"n": 1}, store=store, pool_size=0)
    assert first.status == "SUCCEEDED", first.record.to_dict()
    second = kfnb.run(path, {"n": 5}, store=store, pool_size=0)
    assert second.status == "SUCCEEDED", second.record.to_dict()
    assert statuses(second) == {"a": "SUCCEEDED", "b": "CACHED", "c": "SUCCEEDED"}
    assert second.metrics == {"y": 10.0, "z": 51.0}
    third = kfnb.run(path, {"n": 5, "m": 1}, store=store, pool_size=0)  # m = its default
    assert statuses(third) == {"a": "CACHED", "b": "CACHED", "c": "CACHED"}


def test_cache_off_tag_and_cache_false_always_run(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "opt_out",
        (["step:fresh", "cache:off"], "f = 1"),
        ("step:kept", "k = 2"),
        ("pipeline-metrics", "print(f)\nprint(k)"),
    )
    first = kfnb.run(path, store=store, pool_size=0)
    assert statuses(first) == {"fresh": "SUCCEEDED", "kept": "SUCCEEDED"}
    second = kfnb.run(path, store=store, pool_size=0)
    assert statuses(second) == {"fresh": "SUCCEEDED", "kept": "CACHED"}
    assert second.record.step("fresh").cached_from is None
    third = kfnb.run(path, store=store, pool_size=0, cache=False)
    assert statuses(third) == {"fresh": "SUCCEEDED", "kept": "SUCCEEDED"}
    assert third.metrics == {"f": 1.0, "k": 2.0}


def test_cache_off_in_the_notebook_defaults_and_on_a_step_line(
    write_notebook: Write, store: Store
) -> None:
    # different code in each notebook: the cache is by content, whichever notebook holds it
    defaults = write_notebook(
        "defaults",
        ("step:a", "a = 1"),
        ("step:b", "b = 2"),
        metadata={"kfnb": {"steps_defaults": ["cache:off"]}},
    )
    header = write_notebook("header", "%%step a --no-cache\na = 3", "%%step b\nb = 4")
    for path, expected in (
        (defaults, {"a": "SUCCEEDED", "b": "SUCCEEDED"}),
        (header, {"a": "SUCCEEDED", "b": "CACHED"}),
    ):
        first = kfnb.run(path, store=store, pool_size=0)
        assert statuses(first) == {"a": "SUCCEEDED", "b": "SUCCEEDED"}
        second = kfnb.run(path, store=store, pool_size=0)
        assert statuses(second) == expected, path.name


def test_a_hit_whose_data_files_are_gone_runs_again(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "gone", ("step:a", "x = 4"), ("step:b", "y = x * 2"), ("pipeline-metrics", "print(y)")
    )
    first = kfnb.run(path, store=store, pool_size=0)
    assert first.status == "SUCCEEDED", first.record.to_dict()
    data = Path(first.record.artifacts_dir) / "data" / "a"
    files = [f for f in data.iterdir() if not f.name.startswith(".")]
    assert files
    for f in files:
        f.unlink()
    second = kfnb.run(path, store=store, pool_size=0)
    assert second.status == "SUCCEEDED", second.record.to_dict()
    assert statuses(second) == {"a": "SUCCEEDED", "b": "SUCCEEDED"}
    assert second.record.step("a").cached_from is None
    assert second.outputs("a") == {"x": 4} and second.metrics == {"y": 8.0}


def test_cli_no_cache_runs_every_step_and_a_plain_run_is_cached(
    write_notebook: Write, store: Store
) -> None:
    path = write_notebook(
        "cli",
        ("pipeline-parameters", "n = 2"),
        ("step:a", "x = n + 1"),
        ("step:b", "y = x * 2"),
        ("pipeline-metrics", "print(y)"),
    )
    first = kfnb.run(path, store=store, pool_size=0)
    assert first.status == "SUCCEEDED", first.record.to_dict()

    uncached = cli("run", str(path), "--no-cache", "--json")
    assert uncached.returncode == 0, uncached.stderr
    uncached_id = json.loads(uncached.stdout)["id"]
    plain = cli("run", str(path), "--json")
    assert plain.returncode == 0, plain.stderr
    plain_id = json.loads(plain.stdout)["id"]

    shown = {}
    for run_id in (uncached_id, plain_id):
        done = cli("show", run_id, "--json")
        assert done.returncode == 0, done.stderr
        shown[run_id] = json.loads(done.stdout)
    assert {s["name"]: (s["status"], s["cached_from"]) for s in shown[uncached_id]["steps"]} == {
        "a": ("SUCCEEDED", None),
        "b": ("SUCCEEDED", None),
    }
    # served from the newest run that holds the results
    assert {s["name"]: (s["status"], s["cached_from"]) for s in shown[plain_id]["steps"]} == {
        "a": ("CACHED", f"{uncached_id}/a"),
        "b": ("CACHED", f"{uncached_id}/b"),
    }
    assert shown[plain_id]["metrics"] == {"y": 6.0}
    assert os.environ["KFNB_HOME"] == str(store.home)  # the CLI wrote to the test's store


def test_a_cached_step_records_what_it_logged_again(write_notebook: Write, store: Store) -> None:
    """kfnb.log_metric values are results too: a study's trial whose steps all come from the
    cache must still have its objective and its curve."""
    path = write_notebook(
        "logged",
        ("pipeline-parameters", "n = 3"),
        (
            "step:a",
            "import kfnb\nfor i in range(n):\n    kfnb.log_metric('loss', 1 / (i + 1), step=i)",
        ),
        ("step:b", "total = n * 2"),
        ("pipeline-metrics", "print(total)"),
    )
    first = kfnb.run(path, store=store, pool_size=0)
    second = kfnb.run(path, store=store, pool_size=0)
    assert statuses(second) == {"a": "CACHED", "b": "CACHED"}
    curve = [(m.step, m.value, m.source) for m in store.metrics(second.id, "loss")]
    assert curve == [(m.step, m.value, m.source) for m in store.metrics(first.id, "loss")]
    assert curve == [(0, 1.0, "a"), (1, 0.5, "a"), (2, pytest.approx(1 / 3), "a")]
    assert second.metrics == first.metrics == {"loss": pytest.approx(1 / 3), "total": 6.0}
    assert [m.value for m in store.metrics(second.id, "total")] == [6.0]  # not twice
