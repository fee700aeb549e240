"""A store that cannot be written or read says what failed, on which file, and what to do; and the
run store's errors carry their fix as an attribute, never inside the message."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from kfnb.tracking import AmbiguousRunId, RunNotFound, Store, StoreError
from kfnb.tracking.db import Database
from kfnb.tracking.errors import (
    StoreCorrupt,
    StoreDiskFull,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
)

# (what SQLite said, what the message says, a phrase of the fix)
FAILURES = [
    ("disk I/O error", "the disk failed to read or write it", "check the disk that holds"),
    ("database or disk is full", "the disk that holds it is full", "free space on that disk"),
    (
        "unable to open database file",
        "the file cannot be opened or created",
        "exist and be writable by this user",
    ),
    (
        "attempt to write a readonly database",
        "this process may not write it",
        "files in it writable by this user",
    ),
    ("database is locked", "another process kept it locked for 30 s", "try again"),
]

KINDS = {
    "disk I/O error": StoreUnavailable,
    "database or disk is full": StoreDiskFull,
    "unable to open database file": StoreUnavailable,
    "attempt to write a readonly database": StoreReadOnly,
    "database is locked": StoreLocked,
}


@pytest.mark.parametrize("action", ["read", "write"])
@pytest.mark.parametrize("sqlite_says, problem, fix", FAILURES)
def test_sqlite_failures_become_store_errors(
    tmp_path: Path, action: str, sqlite_says: str, problem: str, fix: str
) -> None:
    db = Database(tmp_path / "kfnb.db")
    cause = sqlite3.OperationalError(sqlite_says)
    context = db.read() if action == "read" else db.write()
    with pytest.raises(StoreError) as raised, context:
        raise cause
    err = raised.value
    assert type(err) is KINDS[sqlite_says]
    assert err.where == str(tmp_path / "kfnb.db")
    assert err.message.startswith(f"cannot {action} the run store: {problem}")
    assert err.fix is not None and fix in err.fix and "Fix:" not in err.message
    assert err.__cause__ is cause
    if "locked" not in sqlite_says:
        assert "KFNB_HOME" in err.fix


def test_a_full_database(tmp_path: Path) -> None:
    db = Database(tmp_path / "kfnb.db")
    full = pytest.raises(StoreError, match="the disk that holds it is full")
    with full as raised, db.write() as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # as full as a full disk
        conn.execute("CREATE TABLE filler (blob BLOB)")
        conn.execute("INSERT INTO filler VALUES (zeroblob(1000000))")
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)


def test_a_read_only_connection(tmp_path: Path) -> None:
    db = Database(tmp_path / "kfnb.db")
    with pytest.raises(StoreError, match="this process may not write it"), db.write() as conn:
        conn.execute("PRAGMA query_only = 1")
        conn.execute("CREATE TABLE t (x)")


def test_a_store_whose_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="its folder is a file, not a folder") as raised:
        Database(tmp_path / "file" / "kfnb.db")
    assert raised.value.where == str(tmp_path / "file" / "kfnb.db")
    assert raised.value.fix == "move that file away, or point KFNB_HOME at a folder"
    with pytest.raises(StoreError, match="cannot create the run store folder") as home:
        Store(tmp_path / "file" / "home")
    assert home.value.fix == "set KFNB_HOME to a writable folder"


READ_ONLY = textwrap.dedent(
    """
    from kfnb.tracking import Store, StoreError
    store = Store({home!r})
    print(len(store.list_runs()), store.recover(), store.read_only is not None)
    try:
        store.create_run(kind="pipeline", name="n", backend="b", notebook=None,
                         notebook_hash=None, params={{}})
    except StoreError as err:
        print(err.message, "|", err.fix, "|", err.where)
    """
)


def test_a_store_on_a_read_only_file_system(tmp_path: Path) -> None:
    """A folder mounted read-only in a private mount namespace (we are root in the sandbox)."""
    home = tmp_path / "home"
    writer = Store(home)
    new_run(writer)
    writer.close()  # the last connection: SQLite folds the WAL into kfnb.db and removes it
    mount = f"mount --bind {tmp_path} {tmp_path} && mount -o remount,ro,bind {tmp_path}"
    script = READ_ONLY.format(home=str(home))
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f'{mount} && exec "$0" -c "$1"', sys.executable, script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 and "StoreError" not in done.stderr:
        pytest.skip(f"cannot mount read-only here: {done.stderr.strip()[-300:]}")
    read, failed = done.stdout.strip().splitlines()
    assert read == "1 [] True"  # what only reads a read-only store works
    message, fix, where = failed.split(" | ")
    assert message.startswith(
        "cannot write the run store: the file system that holds it is mounted read-only"
    )
    assert "KFNB_HOME" in fix and where == str(home / "kfnb.db")


def new_run(store: Store) -> str:
    run = store.create_run(
        kind="pipeline", name="n", backend="b", notebook=None, notebook_hash=None, params={}
    )
    return run.id


def test_a_store_that_cannot_be_written_is_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opened read-only (a full disk, a read-only mount): reads work, each write says why it
    cannot, and once the store can be written again, writes work without reopening it."""
    home = tmp_path / "home"
    first = new_run(Store(home))
    before = (home / "kfnb.db").read_bytes()

    monkeypatch.setattr(Database, "_prepare", failing("attempt to write a readonly database"))
    store = Store(home)
    assert store.read_only is not None
    assert [r.id for r in store.list_runs()] == [first] and store.recover() == []
    with pytest.raises(StoreReadOnly, match="cannot write the run store: this process may not"):
        new_run(store)
    assert (home / "kfnb.db").read_bytes() == before  # nothing written, nothing lost
    monkeypatch.undo()
    second = new_run(store)
    assert store.read_only is None
    assert [r.id for r in store.list_runs()] == [second, first]


def failing(sqlite_says: str) -> Callable[[Database, sqlite3.Connection], None]:
    """A ``Database._prepare`` that fails as SQLite does on a store it cannot write."""

    def prepare(self: Database, conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError(sqlite_says)

    return prepare


def test_a_read_only_store_is_read_fresh_and_writable_once_it_can_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-lived reader (the Jupyter server) that opened the store read-only sees what others
    write once the disk has room again, and then writes itself."""
    home = tmp_path / "home"
    first = new_run(Store(home))
    monkeypatch.setattr("kfnb.tracking.db.RETRY_WRITABLE_S", 0.0)
    with monkeypatch.context() as patched:
        patched.setattr(Database, "_prepare", failing("disk I/O error"))
        reader = Store(home)
        assert isinstance(reader.read_only, StoreError)
        assert [r.id for r in reader.list_runs()] == [first]
    second = new_run(Store(home))  # another process, once there is room
    assert [r.id for r in reader.list_runs()] == [second, first]
    assert reader.read_only is None
    third = new_run(reader)
    assert reader.count_runs() == 3 and third


def test_a_store_that_is_not_a_database_is_not_opened_read_only(tmp_path: Path) -> None:
    (tmp_path / "kfnb.db").write_bytes(b"not a database" * 512)
    with pytest.raises(StoreCorrupt, match="not a usable kfnb database"):
        Database(tmp_path / "kfnb.db")
    assert (tmp_path / "kfnb.db").read_bytes() == b"not a database" * 512


@pytest.mark.parametrize(
    "flag, free, problem, fix",
    [
        (
            os.ST_RDONLY,
            10**9,
            "the file system that holds it is mounted read-only",
            "remount it read-write, or point KFNB_HOME at a folder on a writable file system",
        ),
        (
            0,
            4096,
            "the disk that holds it is full (4 KiB free)",
            "free space on that disk (at {folder}), or point KFNB_HOME at a folder on another disk",
        ),
    ],
)
@pytest.mark.parametrize("sqlite_says", ["disk I/O error", "unable to open database file"])
def test_the_folder_says_why_sqlite_failed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sqlite_says: str,
    flag: int,
    free: int,
    problem: str,
    fix: str,
) -> None:
    """SQLite says "disk I/O error" for a full disk and "unable to open" for a read-only mount:
    the message says what the file system shows instead."""
    db = Database(tmp_path / "kfnb.db")
    fs = types.SimpleNamespace(f_flag=flag, f_bfree=free // 512, f_bavail=free // 512, f_frsize=512)
    monkeypatch.setattr(os, "statvfs", lambda path: fs)
    with pytest.raises(StoreError) as raised, db.write():
        raise sqlite3.OperationalError(sqlite_says)
    assert raised.value.message == f"cannot write the run store: {problem} ({sqlite_says})"
    assert raised.value.fix == fix.format(folder=tmp_path)
    assert type(raised.value) is (StoreReadOnly if flag else StoreDiskFull)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    db = Database(tmp_path / "kfnb.db")
    db.path = tmp_path / "gone" / "kfnb.db"
    err = db._operational("write", sqlite3.OperationalError("unable to open database file"))
    assert err.message.startswith("cannot write the run store: its folder does not exist")
    assert type(err) is StoreUnavailable
    assert (
        err.fix == f"create {tmp_path / 'gone'}, or point KFNB_HOME at an existing writable folder"
    )


@pytest.mark.parametrize(
    "err, message, fix",
    [
        (RunNotFound("zz"), "no run with id 'zz'", "`kfnb runs` lists the recorded runs"),
        (
            AmbiguousRunId("2026", ["2026-a", "2026-b"], more=True),
            "run id prefix '2026' is ambiguous: it matches 2026-a, 2026-b and more",
            "give more characters of the id",
        ),
    ],
)
def test_lookup_errors_carry_their_fix(err: StoreError, message: str, fix: str) -> None:
    assert (err.message, err.fix) == (message, fix)
    assert str(err) == f"{message}. Fix: {fix}"


def test_no_fix_is_written_into_a_message() -> None:
    source = Path(__file__).parents[2] / "kfnb" / "tracking"
    offenders = [
        f"{path.name}:{n}"
        for path in sorted(source.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "Fix:" in line
    ]
    assert offenders == []
