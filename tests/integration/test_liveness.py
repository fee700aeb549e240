"""Two PID namespaces sharing one store, as two containers sharing ``KFNB_HOME`` and a host name:
``recover()`` in one must never fail the other's live runs, and still fails the dead runners it
can see. The second namespace is real: ``unshare --pid --fork --mount-proc`` (we are root in the
test sandbox); where that is not allowed the tests skip, naming the error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfnb.tracking import Run, Store

ROOT = Path(__file__).parents[2]
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]

RECOVER = "import sys; from kfnb.tracking import Store; print(Store(sys.argv[1]).recover())"
# creates a running run whose runner is this process, then waits until told to end
RUNNER = """
import sys
from kfnb.tracking import Store
store = Store(sys.argv[1])
run = store.create_run(kind="pipeline", name="inside", backend="local", notebook=None,
                       notebook_hash=None, params={}, steps=["a"])
store.set_run_status(run.id, "RUNNING")
print(run.id, flush=True)
sys.stdin.read()
"""


def python(code: str, *args: str, namespace: bool) -> list[str]:
    """The command line that runs ``code`` in a fresh PID namespace, or in ours."""
    return [*(UNSHARE if namespace else []), sys.executable, "-c", code, *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module", autouse=True)
def can_unshare() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {probe.stderr.strip()}")


def recover_from(home: Path, *, namespace: bool) -> list[str]:
    done = subprocess.run(
        python(RECOVER, str(home), namespace=namespace),
        capture_output=True,
        text=True,
        timeout=60,
        env=env(),
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout.strip().replace("'", '"'))
    return found


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    yield proc
    proc.communicate(b"", timeout=30)


def running(store: Store, runner_pid: int) -> Run:
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


def test_another_namespace_leaves_our_runs_alone(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    store = Store(tmp_path / "home")
    live = running(store, sleeper.pid)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    dead = running(store, gone.pid)

    # in a new PID namespace neither pid exists: it must not take that for a dead runner
    assert recover_from(store.home, namespace=True) == []
    assert [store.get_run(r.id).status for r in (live, dead)] == ["RUNNING", "RUNNING"]

    # in ours, the dead runner is seen dead, the live one alive
    assert recover_from(store.home, namespace=False) == [dead.id]
    assert store.get_run(dead.id).status == "FAILED"
    assert store.get_run(live.id).status == "RUNNING"


def test_our_recover_leaves_another_namespaces_runs_alone(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    inside = subprocess.Popen(
        python(RUNNER, str(store.home), namespace=True),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        assert inside.stdout is not None
        run_id = inside.stdout.readline().strip()
        assert run_id, "the runner in the other namespace did not start"
        run = store.get_run(run_id)
        assert run.runner_pid is not None and run.runner_pid < 10  # a pid of that namespace
        # here that pid is another process (or none): only the namespace check keeps it alive
        assert store.recover() == []
        assert recover_from(store.home, namespace=False) == []
        assert store.get_run(run_id).status == "RUNNING"
    finally:
        inside.communicate("", timeout=30)
    assert inside.returncode == 0


def test_kfnb_runs_from_another_namespace_leaves_a_live_run_alone(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """What a user does: ``kfnb runs`` in a second container sharing ``KFNB_HOME``."""
    store = Store(tmp_path / "home")
    live = running(store, sleeper.pid)
    kfnb = str(Path(sys.executable).with_name("kfnb"))
    done = subprocess.run(
        [*UNSHARE, kfnb, "runs"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KFNB_HOME": str(store.home)},
    )
    assert done.returncode == 0, done.stderr
    assert live.id in done.stdout and "RUNNING" in done.stdout
    assert store.get_run(live.id).status == "RUNNING"
