"""Which runners ``recover()`` may judge: the runner identity recorded at ``create_run`` (boot id,
PID namespace) against the checking process's own. Real processes; identities edited in SQL to
stand for another boot, another container or an older kfnb."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kfnb.tracking import Run, Store
from kfnb.tracking.liveness import BOOT_ID_FILE, current_identity

HERE = current_identity()
pytestmark = pytest.mark.skipif(
    HERE.boot_id is None or HERE.pid_namespace is None,
    reason="no /proc here: runner identities cannot be read",
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def new_run(store: Store, runner_pid: int | None = None) -> Run:
    run = store.create_run(
        kind="pipeline",
        name="r",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={},
        steps=("a",),
        runner_pid=runner_pid,
    )
    store.set_run_status(run.id, "RUNNING")
    return run


def test_create_run_records_the_runner_identity(store: Store) -> None:
    run = new_run(store)
    with sqlite3.connect(store.db_path) as conn:
        text, started = conn.execute(
            "SELECT runner_identity, runner_started_at FROM runs WHERE id = ?", (run.id,)
        ).fetchone()
    identity = json.loads(text)
    assert identity == {
        "boot_id": Path(BOOT_ID_FILE).read_text().strip(),
        "pid_namespace": os.stat("/proc/self/ns/pid").st_ino,
        "pid": os.getpid(),
        "started_at": started,
    }
    remote = store.create_run(
        kind="pipeline",
        name="r",
        backend="kfp",
        notebook=None,
        notebook_hash=None,
        params={},
        remote={"id": "x"},
    )
    with sqlite3.connect(store.db_path) as conn:
        row = conn.execute(
            "SELECT runner_pid, runner_identity FROM runs WHERE id = ?", (remote.id,)
        ).fetchone()
    assert row == (None, None)  # a cluster drives it: nothing to check here


OTHER_BOOT = "00000000-0000-0000-0000-000000000000"

# (runner alive?, identity edit, host edit, ended by recover?, reason ends with)
CASES = [
    pytest.param(True, None, None, False, None, id="seen-alive"),
    pytest.param(False, None, None, True, "before the run finished", id="seen-dead"),
    pytest.param(True, {"boot_id": OTHER_BOOT}, None, True, "restarted since", id="rebooted"),
    pytest.param(False, {"boot_id": OTHER_BOOT}, "elsewhere", False, None, id="other-machine"),
    pytest.param(False, {"pid_namespace": 1}, None, False, None, id="other-container-dead"),
    pytest.param(True, {"pid_namespace": 1}, "elsewhere", False, None, id="other-container"),
    pytest.param(False, "NULL", None, True, "before the run finished", id="old-row-dead"),
    pytest.param(True, "NULL", None, False, None, id="old-row-alive"),
    pytest.param(False, "NULL", "elsewhere", False, None, id="old-row-other-host"),
    pytest.param(False, "not json", None, True, "before the run finished", id="unreadable"),
    pytest.param(False, {"boot_id": None}, None, True, "before the run finished", id="no-boot"),
]


@pytest.mark.parametrize("alive, identity, host, ended, reason", CASES)
def test_recover_judges_only_runners_it_can_see(
    store: Store,
    alive: bool,
    identity: dict[str, Any] | str | None,
    host: str | None,
    ended: bool,
    reason: str | None,
) -> None:
    run = new_run(store, runner_pid=None if alive else dead_pid())
    with sqlite3.connect(store.db_path) as conn:
        if isinstance(identity, dict):
            (text,) = conn.execute(
                "SELECT runner_identity FROM runs WHERE id = ?", (run.id,)
            ).fetchone()
            edited = json.dumps({**json.loads(text), **identity})
            conn.execute("UPDATE runs SET runner_identity = ? WHERE id = ?", (edited, run.id))
        elif identity == "NULL":
            conn.execute("UPDATE runs SET runner_identity = NULL WHERE id = ?", (run.id,))
        elif identity is not None:
            conn.execute("UPDATE runs SET runner_identity = ? WHERE id = ?", (identity, run.id))
        if host is not None:
            conn.execute("UPDATE runs SET runner_host = ? WHERE id = ?", (host, run.id))
    assert store.recover() == ([run.id] if ended else [])
    after = store.get_run(run.id)
    assert after.status == ("FAILED" if ended else "RUNNING")
    if reason is not None:
        assert after.error is not None and after.error.endswith(reason)
        assert after.step("a").status == "SKIPPED"
