"""A store that cannot be written or read says what failed, on which file, and what to do; and the
run store's errors carry their fix as an attribute, never inside the message."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kfnb.tracking import AmbiguousRunId, RunNotFound, Store, StoreError
from kfnb.tracking.db import Database

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
    with pytest.raises(StoreError, match="the file cannot be opened or created") as raised:
        Database(tmp_path / "file" / "kfnb.db")
    assert raised.value.where == str(tmp_path / "file" / "kfnb.db")
    with pytest.raises(StoreError, match="cannot create the run store folder") as home:
        Store(tmp_path / "file" / "home")
    assert home.value.fix == "set KFNB_HOME to a writable folder"


READ_ONLY = textwrap.dedent(
    """
    from kfnb.tracking import Store, StoreError
    try:
        Store({home!r}).create_run(kind="pipeline", name="n", backend="b", notebook=None,
                                   notebook_hash=None, params={{}})
    except StoreError as err:
        print(err.message, "|", err.fix, "|", err.where)
    """
)


def test_a_store_on_a_read_only_file_system(tmp_path: Path) -> None:
    """A folder mounted read-only in a private mount namespace (we are root in the sandbox)."""
    home = tmp_path / "home"
    Store(home).close()
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
    message, fix, where = done.stdout.strip().split(" | ")
    assert message.startswith("cannot ") and "the run store" in message
    assert "KFNB_HOME" in fix and where == str(home / "kfnb.db")


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
