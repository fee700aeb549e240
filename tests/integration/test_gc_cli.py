"""`kfnb gc` on real runs: a dry run lists and removes nothing; a removal takes the records and
artifacts folders of the runs it selects, keeps the runs kept runs' cached steps reused, and the
step cache goes on serving the kept runs' steps. `kfnb runs` shows each run's disk use."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfnb.tracking import Store

Write = Callable[..., Path]
KFNB = str(Path(sys.executable).with_name("kfnb"))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KFNB, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )


def run(path: Path) -> dict[str, Any]:
    done = cli("run", str(path), "--json")
    assert done.returncode == 0, done.stderr
    record: dict[str, Any] = json.loads(done.stdout)
    assert record["status"] == "SUCCEEDED", record
    return record


def test_gc_removes_old_runs_and_keeps_the_cache_of_kept_ones(
    write_notebook: Write, store: Store
) -> None:
    same = write_notebook("same", ("step:a", "x = 2 * 21"), ("step:b", "y = x + 1"))
    other = write_notebook("other", ("step:a", "z = 5"))
    first = run(same)
    second = run(other)
    third = run(same)  # served by the first run's steps
    assert {s["name"]: s["cached_from"] for s in third["steps"]} == {
        "a": f"{first['id']}/a",
        "b": f"{first['id']}/b",
    }

    listed = cli("runs")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert "SIZE" in header.split()
    assert all(("KiB" in row or " B " in row) for row in rows), listed.stdout

    nothing = cli("gc")
    assert nothing.returncode == 2 and "at least one criterion" in nothing.stderr

    dry = cli("gc", "--keep-last", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"kept {first['id']}: step " in dry.stdout
    assert f"reused the results of run {first['id']}" in dry.stdout
    assert second["id"] in dry.stdout
    assert "would remove 1 run, freeing" in dry.stdout
    assert store.count_runs() == 3
    assert Path(second["steps"][0]["log"]).exists()

    as_json = cli("gc", "--keep-last", "1", "--dry-run", "--json")
    planned = json.loads(as_json.stdout)
    assert [r["id"] for r in planned["removed"]] == [second["id"]]
    assert planned["freed_bytes"] > 0 and planned["dry_run"] is True

    done = cli("gc", "--keep-last", "1")
    assert done.returncode == 0, done.stderr
    assert "removed 1 run, freeing" in done.stdout
    assert {r.id for r in store.list_runs(limit=None)} == {first["id"], third["id"]}
    assert not (store.runs_dir / second["id"]).exists()
    gone = cli("show", second["id"])
    assert gone.returncode == 2 and "no run" in gone.stderr.lower()

    fourth = run(same)  # the cache still serves the kept runs' steps
    assert {s["status"] for s in fourth["steps"]} == {"CACHED"}
    assert {s["cached_from"] for s in fourth["steps"]} == {f"{first['id']}/a", f"{first['id']}/b"}
    assert fourth["metrics"] == third["metrics"]
