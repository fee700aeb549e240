"""Faults of the run store's disk, with real runs: the disk fills while a run runs, the store is
on a read-only file system, the store file is garbage or cut short.

Each case runs ``kfnb`` as a user types it (a subprocess on tiny step-tagged notebooks, real
kernels) and checks: the run reaches a terminal state with its cause recorded, or the command
exits with one clear line; nothing recorded before is lost or overwritten; no process is left;
no traceback on the user's screen. Each prints one summary line (run with ``-s`` to see them).

The full disk and the read-only store are real: a small tmpfs mounted as ``KFNB_HOME`` (we are
root in CI); where mounting is not allowed the cases skip, naming the error.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from procs import processes_of

from kfnb.backends.local.runfiles import RunFilesError, RunPaths, disk_errno, disk_error
from kfnb.tracking import Run, Store

KFNB = str(Path(sys.executable).with_name("kfnb"))
TRACEBACK = "Traceback (most recent call last)"


# -- helpers --------------------------------------------------------------------------------------
def write_notebook(folder: Path, name: str, *cells: tuple[str, str]) -> Path:
    """A notebook of step-tagged cells: ``("step:a", "x = 1")``."""
    nb = new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Py"}}
    )
    for tag, source in cells:
        nb.cells.append(new_code_cell(source, metadata={"tags": [tag]}))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def kfnb(
    *args: str,
    mark: str,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    as_user: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``kfnb ARGS`` as a user runs it (``as_user``: the command that runs it as another user);
    it and every process it starts carry ``mark``."""
    env = {**os.environ, **(env or {}), "KFNB_TEST_MARK": mark, "KFNB_POOL_SIZE": "0"}
    env.pop("KFNB_DEBUG", None)
    return subprocess.run(
        [*(as_user or []), KFNB, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def leaked(mark: str, grace: float = 15) -> list[int]:
    """The processes carrying ``mark`` still alive after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while (left := processes_of(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def one_clear_line(stderr: str) -> str:
    """The command's error: one ``kfnb: error:`` line, no traceback."""
    assert TRACEBACK not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("kfnb: error: "), stderr
    return lines[0]


def snapshot(run: Run) -> dict[str, Any]:
    """What a run's record says, to compare before and after a fault."""
    return {
        "status": run.status,
        "error": run.error,
        "steps": [(s.name, s.status, s.error) for s in run.steps],
        "metrics": run.metrics,
        "params": run.params,
    }


def records(home: Path) -> dict[str, dict[str, Any]]:
    store = Store(home)
    try:
        return {r.id: snapshot(store.get_run(r.id)) for r in store.list_runs(limit=None)}
    finally:
        store.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def summary(
    case: str, *, faults: int, runs: int, terminal: int, lost: int, leaks: int, refused: int = 0
) -> None:
    """One line per case: runs recorded and how many ended, commands refused (with one clear
    line, no traceback), records lost, processes leaked."""
    print(
        f"\n[faults] {case}: faults injected {faults}, runs {runs}, terminal {terminal}/{runs}, "
        f"refused {refused}, lost {lost}, leaked {leaks}"
    )


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder`` (skips where mounting is not allowed);
    unmounted at the end whatever happens."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the disk that holds ``folder`` to the last byte; returns the filler file."""
    filler = folder / f"filler-{uuid.uuid4().hex[:6]}"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


SMALL = (("step:a", "x = 1"), ("step:b", "y = x + 1"))


# -- what a failure to write a run's files says -------------------------------------------------
@pytest.mark.parametrize(
    "err, number",
    [
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC),
        ("MarshalError: cannot save 'big': [Errno 28] No space left on device", errno.ENOSPC),
        ("OSError: [Errno 30] Read-only file system: '/x'", errno.EROFS),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), errno.EDQUOT),
        (OSError(errno.ENOENT, "No such file"), None),
        ("ZeroDivisionError: division by zero", None),
    ],
)
def test_disk_errors_are_told_from_the_rest(err: Any, number: int | None) -> None:
    """An OSError, one that another error was raised from, or its text in a step's outcome."""
    assert disk_errno(err) == number
    if isinstance(err, BaseException):
        wrapped = RuntimeError("the local runner failed")
        wrapped.__cause__ = err
        assert disk_errno(wrapped) == number


def test_a_full_disk_says_where_and_what_to_do(tmp_path: Path) -> None:
    err = disk_error(OSError(errno.ENOSPC, "x"), tmp_path, "step 'b' could not write its log")
    assert isinstance(err, RunFilesError)
    assert err.message == (
        f"step 'b' could not write its log: the disk that holds {tmp_path} is full "
        "([Errno 28] No space left on device)"
    )
    assert err.fix == (
        f"free space on that disk (at {tmp_path}), or set KFNB_HOME to a folder on another disk"
    )


def test_permissions_count_only_for_the_runs_own_files(tmp_path: Path) -> None:
    """A permission error or a read-only mount is the run's folder's only when it names a file
    there (a step may fail to open anything else)."""
    mine = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "logs" / "a.log"))
    other = PermissionError(errno.EACCES, "Permission denied", "/etc/shadow")
    err = disk_error(mine, tmp_path, "step 'a' could not write its notebook or log")
    assert err is not None and f"this user may not write in {tmp_path}" in err.message
    assert disk_error(other, tmp_path, "step 'a' could not write its notebook or log") is None


def test_run_folders_that_cannot_be_made_say_why(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFilesError, match="cannot create the run's folders") as raised:
        RunPaths(tmp_path / "file" / "run").make()
    assert raised.value.fix and "KFNB_HOME" in raised.value.fix


def test_a_disk_that_fills_while_a_run_is_set_up_ends_the_run(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store took the run, then the step notebooks do not fit: the run ends FAILED with
    the cause (before, an OSError traceback, and a run left PENDING until a later recover)."""
    import kfnb
    from kfnb.backends.local import LocalBackend

    def full(pipeline: Any, cached: Any, paths: RunPaths) -> None:
        target = paths.steps / "a.ipynb"
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(LocalBackend, "_write_step_notebooks", staticmethod(full))
    small = write_notebook(tmp_path / "project", "small", ("step:a", "x = 1"))
    with pytest.raises(RunFilesError, match="cannot write the step notebooks: the disk") as err:
        kfnb.run(small, store=store)
    [run] = store.list_runs()
    assert run.status == "FAILED" and str(err.value) == run.error
    assert err.value.fix and "KFNB_HOME" in err.value.fix


# -- a disk that fills while a run runs ------------------------------------------------------------
# "outputs": a step's outputs do not fit (kfnb's values writer fails, and frees what it wrote);
# "filler": a step fills the disk to the last byte and keeps it full (its notebook, its log, the
# steps after it and the store all meet a full disk)
FILLERS = {
    "outputs": "import os\nbig = os.urandom(6_000_000)",
    "filler": (
        "import os\n"
        "f = open(os.path.join(os.environ['KFNB_HOME'], 'filler'), 'wb')\n"
        "try:\n"
        "    while True:\n"
        "        f.write(b'0' * 65536)\n"
        "        f.flush()\n"
        "except OSError:\n"
        "    pass\n"
        "f.close()\n"
        "print('x' * 200_000)"
    ),
}

USES = {"outputs": "z = x + len(big)", "filler": "z = x"}


@pytest.mark.parametrize("how", sorted(FILLERS))
def test_a_disk_that_fills_mid_run(tmp_path: Path, kfnb_home: Path, how: str) -> None:
    mark = f"faults-full-{uuid.uuid4().hex[:8]}"
    project = tmp_path / "project"
    small = write_notebook(project, "small", *SMALL)
    big = write_notebook(
        project, "big", ("step:a", "x = 1"), ("step:b", FILLERS[how]), ("step:c", USES[how])
    )
    with tmpfs(kfnb_home, "2m"):
        earlier = kfnb("run", str(small), mark=mark)
        assert earlier.returncode == 0, earlier.stderr
        before = records(kfnb_home)

        done = kfnb("run", "--no-cache", str(big), mark=mark)
        assert TRACEBACK not in done.stderr and TRACEBACK not in done.stdout, done
        assert "Task was destroyed" not in done.stderr, done.stderr  # asyncio's leftovers
        left = leaked(mark)
        after = records(kfnb_home)
        new = [rid for rid in after if rid not in before]
        assert len(new) == 1
        run = after[new[0]]
        if run["status"] != "RUNNING":  # the store recorded the end
            assert done.returncode == 1
            assert run["status"] == "FAILED"
            step_b = next(s for s in run["steps"] if s[0] == "b")
            assert step_b[1] == "FAILED"
            message = step_b[2]["message"]
            assert f"the disk that holds {kfnb_home}" in message and "is full" in message
            assert "KFNB_HOME" in step_b[2]["fix"]
            assert "traceback" not in step_b[2]  # kfnb's insides are not the user's business
            assert run["error"] and "is full" in run["error"]
            assert "is full" in done.stdout
        else:  # the store could not record it: the command says so in one line
            assert done.returncode != 0
            said = [ln for ln in done.stderr.splitlines() if "could not record it" in ln]
            assert len(said) == 1 and "is full" in said[0], done.stderr
        lost = sum(after.get(rid) != rec for rid, rec in before.items())
        assert lost == 0, (before, after)

        # once there is room again the store takes new runs as before
        for filler in kfnb_home.glob("filler*"):
            filler.unlink()
        again = kfnb("run", str(small), mark=mark)
        assert again.returncode == 0, again.stderr
        final = records(kfnb_home)
        ended = [r["status"] in ("SUCCEEDED", "FAILED") for r in final.values()]
        assert len(final) == 3 and all(ended)
    assert left == []
    summary(
        f"disk full mid-run ({how})",
        faults=1,
        runs=3,
        terminal=sum(r["status"] in ("SUCCEEDED", "FAILED") for r in final.values()),
        lost=lost,
        leaks=len(left),
    )


def test_a_run_on_a_full_disk(tmp_path: Path, kfnb_home: Path) -> None:
    """The disk is full before the run starts: reading the store still works, starting a run
    says the disk is full and where, in one line; nothing recorded is lost."""
    mark = f"faults-prefull-{uuid.uuid4().hex[:8]}"
    small = write_notebook(tmp_path / "project", "small", *SMALL)
    with tmpfs(kfnb_home, "2m"):
        assert kfnb("run", str(small), mark=mark).returncode == 0
        before = records(kfnb_home)
        db = digest(kfnb_home / "kfnb.db")
        filler = fill(kfnb_home)

        listed = kfnb("runs", mark=mark)
        assert listed.returncode == 0 and TRACEBACK not in listed.stderr, listed.stderr
        assert all(rid in listed.stdout for rid in before)
        started = kfnb("run", "--no-cache", str(small), mark=mark)
        assert started.returncode != 0
        line = one_clear_line(started.stderr)
        assert "the disk that holds it is full" in line and f"at {kfnb_home}" in line, line
        left = leaked(mark)
        assert digest(kfnb_home / "kfnb.db") == db  # nothing written, nothing lost

        filler.unlink()
        assert kfnb("run", str(small), mark=mark).returncode == 0
        after = records(kfnb_home)
        lost = sum(after.get(rid) != rec for rid, rec in before.items())
    assert lost == 0 and len(after) == 2 and left == []
    summary(
        "disk full before the run",
        faults=1,
        runs=len(after),
        terminal=sum(r["status"] == "SUCCEEDED" for r in after.values()),
        refused=1,
        lost=lost,
        leaks=len(left),
    )


# -- a read-only store ----------------------------------------------------------------------------
def test_a_read_only_store(tmp_path: Path, kfnb_home: Path) -> None:
    """The store's file system is remounted read-only (root ignores chmod, so a mount is the real
    thing): listing and showing runs work; starting one says why not, in one line."""
    mark = f"faults-ro-{uuid.uuid4().hex[:8]}"
    small = write_notebook(tmp_path / "project", "small", *SMALL)
    with tmpfs(kfnb_home, "8m"):
        first = kfnb("run", str(small), mark=mark)
        assert first.returncode == 0, first.stderr
        before = records(kfnb_home)
        (rid,) = before
        db = digest(kfnb_home / "kfnb.db")
        ro = subprocess.run(
            ["mount", "-o", "remount,ro", str(kfnb_home)], capture_output=True, text=True
        )
        if ro.returncode != 0:
            pytest.skip(f"cannot remount the tmpfs read-only: {ro.stderr.strip()}")

        listed = kfnb("runs", mark=mark)
        assert listed.returncode == 0 and TRACEBACK not in listed.stderr, listed.stderr
        assert rid in listed.stdout and "SUCCEEDED" in listed.stdout
        shown = kfnb("show", rid, mark=mark)
        assert shown.returncode == 0 and TRACEBACK not in shown.stderr, shown.stderr
        assert records(kfnb_home) == before

        started = kfnb("run", "--no-cache", str(small), mark=mark)
        assert started.returncode == 2
        line = one_clear_line(started.stderr)
        assert "cannot write the run store" in line and "mounted read-only" in line, line
        assert f"{kfnb_home / 'kfnb.db'}" in line and "KFNB_HOME" in line
        left = leaked(mark)
        assert digest(kfnb_home / "kfnb.db") == db
        subprocess.run(["mount", "-o", "remount,rw", str(kfnb_home)], check=True)
        after = records(kfnb_home)
    assert after == before and left == []
    summary("read-only store", faults=1, runs=1, terminal=1, refused=1, lost=0, leaks=len(left))


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_a_store_of_another_user(tmp_path: Path) -> None:
    """Another user's store (root's, 0755): this user reads it, and starting a run says this
    user may not write it, in one line; the store is left as it was."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run kfnb as another user")
    mark = f"faults-user-{uuid.uuid4().hex[:8]}"
    base = Path(tempfile.mkdtemp(prefix="kfnb-faults-"))  # tmp_path is root's only (0700)
    try:
        base.chmod(0o755)
        home, user_home = base / "home", base / "nobody"
        user_home.mkdir()
        os.chown(user_home, 65534, 65534)
        small = write_notebook(base / "project", "small", *SMALL)
        env = {"KFNB_HOME": str(home), "HOME": str(user_home)}
        first = kfnb("run", str(small), mark=mark, env=env)
        assert first.returncode == 0, first.stderr
        before = records(home)
        db = digest(home / "kfnb.db")
        probe = kfnb("--help", mark=mark, env=env, as_user=NOBODY)
        if probe.returncode != 0:
            pytest.skip(f"cannot run kfnb as nobody here: {probe.stderr.strip()[-300:]}")

        listed = kfnb("runs", mark=mark, env=env, as_user=NOBODY)
        assert listed.returncode == 0 and TRACEBACK not in listed.stderr, listed.stderr
        assert all(rid in listed.stdout for rid in before)
        started = kfnb("run", str(small), mark=mark, env=env, as_user=NOBODY)
        assert started.returncode == 2
        line = one_clear_line(started.stderr)
        assert "cannot write the run store: this user may not write it" in line, line
        assert "KFNB_HOME" in line
        left = leaked(mark)
        assert digest(home / "kfnb.db") == db and records(home) == before
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert left == []
    summary("another user's store", faults=1, runs=1, terminal=1, refused=1, lost=0, leaks=0)


# -- a corrupt store ------------------------------------------------------------------------------
def garbage(db: Path) -> None:
    db.write_bytes(os.urandom(db.stat().st_size))


def truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def bad_header(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(b"\xde\xad" * 50 + data[100:])


@pytest.mark.parametrize("damage", [garbage, truncated, bad_header], ids=lambda f: f.__name__)
def test_a_corrupt_store(tmp_path: Path, kfnb_home: Path, damage: Any) -> None:
    """kfnb.db overwritten with garbage, or cut short: every command says the store is not a
    usable database and what to do, in one line; the damaged file is left as it is (the user
    may want it back), no new store is made over it."""
    mark = f"faults-corrupt-{uuid.uuid4().hex[:8]}"
    small = write_notebook(tmp_path / "project", "small", *SMALL)
    assert kfnb("run", str(small), mark=mark).returncode == 0
    Store(kfnb_home).close()  # the last connection: the WAL folded into kfnb.db
    db = kfnb_home / "kfnb.db"
    assert not db.with_name("kfnb.db-wal").exists()
    damage(db)
    damaged = digest(db)
    outcomes = []
    for args in (["runs"], ["run", "--no-cache", str(small)], ["show", "2026"]):
        done = kfnb(*args, mark=mark)
        assert done.returncode == 2, done
        line = one_clear_line(done.stderr)
        assert "the run store is not a usable kfnb database" in line, line
        assert "move it away" in line and str(db) in line
        assert digest(db) == damaged  # never overwritten
        outcomes.append(done.returncode)
    assert sorted(p.name for p in kfnb_home.iterdir() if p.name.startswith("kfnb.db")) in (
        ["kfnb.db"],
        ["kfnb.db", "kfnb.db-shm", "kfnb.db-wal"],
    )
    assert not any(p.stat().st_size for p in kfnb_home.glob("kfnb.db-wal"))
    left = leaked(mark)
    assert left == []
    summary(
        f"corrupt store ({damage.__name__})",
        faults=1,
        runs=1,
        terminal=1,
        refused=len(outcomes),
        lost=0,  # the damage is the fault injected; kfnb wrote nothing over it
        leaks=len(left),
    )
