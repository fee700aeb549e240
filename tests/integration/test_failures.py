"""Failures that must still end a run: a full disk, a store that cannot write, a killed kernel.

Whatever fails, the run reaches FAILED (or CANCELED) with the cause in ``run.error``, its steps
are closed and ``wait()`` returns; nothing is left RUNNING or CANCELING.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import wait_for

import kfnb
from kfnb.tracking import Store, StoreDiskFull

Write = Callable[..., Path]
OPEN = ("PENDING", "RUNNING")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards (skipped where mounting is not permitted)."""
    where = tmp_path / "small-disk"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def closed(run: Any) -> bool:
    return all(s.status not in OPEN for s in run.record.steps)


def test_a_run_that_fills_the_disk_fails_with_the_cause_and_a_cancel_still_ends(
    small_disk: Path, write_notebook: Write, tmp_path: Path
) -> None:
    store = Store(small_disk / "home")
    big = write_notebook(
        "big",
        ("step:a", "blob = bytes(3 * 2**20)"),  # saved for b: 3 MiB on a 2 MiB disk
        ("step:b", "n = len(blob)"),
    )
    run = kfnb.run(big, store=store, pool_size=0, cache=False, wait=False)
    run.wait(timeout=120)
    record = run.record
    assert record.status == "FAILED", record.to_dict()
    assert "no space left" in (record.error or "").lower(), record.error
    assert record.step("a").status == "FAILED" and record.step("b").status == "SKIPPED"
    assert "no space left" in str(record.step("a").error).lower()
    assert closed(run)

    # the disk fills again while a step of another run waits: its cancel still ends it
    for partial in Path(record.artifacts_dir, "data").glob("*"):
        subprocess.run(["rm", "-rf", str(partial)], check=True)
    full = tmp_path / "full"
    waits = write_notebook(
        "waits",
        (
            "step:w",
            "import os, time\n"
            "try:\n"
            "    with open(os.path.join(os.environ['KFNB_HOME'], 'filler'), 'wb') as f:\n"
            "        while True:\n"
            "            f.write(bytes(2**16))\n"
            "            f.flush()\n"
            "except OSError:\n"
            "    pass\n"
            f"open({str(full)!r}, 'w').close()\n"
            "while True:\n"
            "    time.sleep(0.05)",
        ),
    )
    second = kfnb.run(waits, store=store, pool_size=0, cache=False, wait=False)
    wait_for(full.exists, "the step to fill the disk")
    second.cancel()
    second.wait(timeout=60)
    assert second.status in ("CANCELED", "FAILED"), second.record.to_dict()
    assert closed(second)


class FlakyStore(Store):
    """A store whose ``set_step_status`` raises ``error`` (an OSError by default) once, for one
    step and status."""

    def __init__(self, home: Path, step: str, status: str, error: Exception | None = None) -> None:
        super().__init__(home)
        self.step, self.status, self.raised = step, status, False
        self.error = error or OSError(5, "Input/output error (a flaky disk)")

    def __reduce__(self) -> tuple[Any, ...]:
        return (FlakyStore, (self.home, self.step, self.status, self.error))

    def set_step_status(self, run_id: str, step: str, status: Any, **fields: Any) -> Any:
        if (step, status) == (self.step, self.status) and not self.raised:
            self.raised = True
            raise self.error
        return super().set_step_status(run_id, step, status, **fields)


@pytest.mark.parametrize(
    ("step", "status"), [("a", "RUNNING"), ("a", "SUCCEEDED"), ("b", "RUNNING")]
)
def test_a_store_write_that_raises_fails_the_run_with_the_cause(
    write_notebook: Write, kfnb_home: Path, step: str, status: str
) -> None:
    store = FlakyStore(kfnb_home, step, status)
    path = write_notebook("flaky", ("step:a", "x = 1"), ("step:b", "y = x + 1"))
    run = kfnb.run(path, store=store, pool_size=0, cache=False, wait=False)
    run.wait(timeout=120)
    record = run.record
    assert store.raised
    assert record.status == "FAILED", record.to_dict()
    assert "Input/output error (a flaky disk)" in (record.error or ""), record.error
    assert closed(run)


def test_a_step_failure_the_full_store_cannot_take_still_reaches_the_step(
    write_notebook: Write, kfnb_home: Path
) -> None:
    """A step fails and the store cannot record it: the disk is full and the space the run
    held back was taken at once (by a step still filling the disk). The run fails; the step
    still ends with its own error, the run's error says both why and that the disk is full."""
    full = StoreDiskFull(
        "kfnb.db: the disk that holds it is full", fix="free space", where=str(kfnb_home)
    )
    store = FlakyStore(kfnb_home, "b", "FAILED", full)
    path = write_notebook(
        "fails",
        ("step:a", "x = 1"),
        ("step:b", "z = x\nraise ValueError('boom')"),
        ("step:c", "y = z"),  # waits for b
    )
    run = kfnb.run(path, store=store, pool_size=0, cache=False, wait=False)
    run.wait(timeout=120)
    record = run.record
    assert store.raised
    assert record.status == "FAILED", record.to_dict()
    error = record.step("b").error or {}
    assert error.get("ename") == "ValueError" and "boom" in error["message"], error
    assert "boom" in (record.error or "") and "is full" in (record.error or ""), record.error
    assert f"the disk that holds {kfnb_home}" in (record.error or ""), record.error
    assert record.step("a").status == "SUCCEEDED" and record.step("c").status == "FAILED"
    assert "KFNB_HOME" in str((record.step("c").error or {}).get("fix")), record.step("c")
    assert closed(run)


def test_a_kernel_killed_mid_step_fails_the_step_naming_the_signal_and_the_cell(
    write_notebook: Write, store: Store, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    path = write_notebook(
        "killed",
        ("step:a", "x = 1"),
        (
            "step:b",
            f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "while True:\n    time.sleep(0.05)",
        ),
        ("step:c", "z = x"),
    )
    run = kfnb.run(path, store=store, pool_size=0, cache=False, wait=False)
    wait_for(lambda: pid_file.exists() and pid_file.read_text() != "", "step b to start")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    run.wait(timeout=120)
    record = run.record
    assert record.status == "FAILED", record.to_dict()
    error = record.step("b").error or {}
    assert "the kernel died (SIGKILL)" in error["message"], error
    assert error["cell"] == 1 and "at cell 1 ('import os, time')" in error["message"], error
    assert "the kernel died (SIGKILL)" in (record.error or "")
    assert record.step("a").status == "SUCCEEDED" and record.step("c").status == "SUCCEEDED"
    assert closed(run)
