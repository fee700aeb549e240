"""SQLite connections for the run store, safe across threads and processes.

Many writers share one store: the local runner's scheduler threads, a notebook kernel logging
metrics, the CLI and the Jupyter server reading. So:

- WAL journal (readers never wait for the writer, the writer never waits for readers),
  ``synchronous=NORMAL`` (durable across process crashes; a power cut may lose the last
  commits, never corrupt the file), foreign keys on, and a 30 s busy timeout;
- one connection per thread (SQLite connections must not cross threads), opened again in a
  forked child (one must not cross ``fork()`` either);
- one short transaction per store call: ``BEGIN IMMEDIATE`` for writes, so a read-modify-write
  (a status transition) sees no other writer in between, and ``BEGIN`` for multi-query reads,
  so a run and its steps come from one snapshot.

The folder must be on a local file system: WAL needs shared memory, which network file systems
do not give.

SQLite's failures are turned into ``StoreError``s in one place, ``Database._errors``: a locked,
full, read-only, unopenable or failing file becomes an error that names the file (``where``), says
what failed and what to do (``fix``: free space, fix permissions, point ``KFNB_HOME`` elsewhere),
chained to SQLite's error. SQLite's words are vague ("disk I/O error" for a full disk, "unable to
open database file" for a read-only mount), so the folder is looked at too (``_diagnose``): full,
mounted read-only, not writable by this user, or missing.

A store that can be read but not written (a full disk, a read-only mount, files of another user)
is opened read-only (``read_only`` says why): what only reads it (``kfnb runs``, ``kfnb show``)
works, and each write tries to open it for writing again (the disk may have been freed meanwhile)
before it raises the error that says why it cannot.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import (
    StoreCorrupt,
    StoreDiskFull,
    StoreError,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
)
from .schema import LATEST, _check_not_newer, migrate, schema_version

BUSY_TIMEOUT_S = 30.0
HOME_ENV = "KFNB_HOME"
RETRY_WRITABLE_S = 5.0  # a read-only store: how often reads look whether it can be written again
FULL_BYTES = 128 * 1024  # less free than this and SQLite cannot grow its WAL: the disk is full


class Database:
    """The store's SQLite file; ``read()`` and ``write()`` give a connection in a transaction."""

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        #: why this process may only read the store (None: it may write it)
        self.read_only: StoreError | None = None
        self._mode = 0  # bumped when read_only changes: connections of the other mode are dropped
        self._retry_at = 0.0  # read-only: when a read next tries to open it for writing
        try:
            with self._errors():
                self._prepare(self._connection())
        except StoreError as err:
            if not self._readable_anyway(err):
                raise
            self.close()
            self._set_read_only(err)
            self._retry_at = time.monotonic() + RETRY_WRITABLE_S
            with self._errors("read"):
                conn = self._connection()
                found = schema_version(conn)
                if found != LATEST:  # a newer kfnb's store says so; an older one needs migrating
                    _check_not_newer(found, path)
                    raise err
            self.close()

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")  # persistent: a property of the file
        migrate(conn, self.path)

    def _readable_anyway(self, err: StoreError) -> bool:
        """Whether a store that could not be opened for writing may still be read: it exists,
        and what failed is writing (full, read-only, permissions), not the file's contents."""
        cause = err.__cause__
        if not isinstance(cause, sqlite3.OperationalError) or _locked(str(cause)):
            return False
        try:
            return self.path.is_file() and self.path.stat().st_size > 0
        except OSError:
            return False

    def _set_read_only(self, why: StoreError | None) -> None:
        self.read_only = why
        self._mode += 1

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid() and self._local.mode == self._mode:
            return conn
        if conn is not None and self._local.pid == os.getpid():
            conn.close()  # opened before the store became read-only (or writable again)
        # (a connection inherited through fork() is dropped, not closed: closing it could
        # release locks the parent still holds)
        if self.read_only is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        else:
            conn = self._read_only_connection()
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._local.conn = conn
        self._local.pid = os.getpid()
        self._local.mode = self._mode
        return conn

    def _read_only_connection(self) -> sqlite3.Connection:
        """A connection that never writes. Without a WAL file beside it (or with an empty one, as
        a failed open leaves) the database file holds every commit, and is opened ``immutable``
        (SQLite then needs no ``-shm`` file, which a full disk or a read-only mount would not let
        it create); with one, read-only through it."""
        uri = "file:" + urllib.parse.quote(str(self.path)) + "?mode=ro"
        try:
            wal = self.path.with_name(self.path.name + "-wal").stat().st_size
        except OSError:
            wal = 0
        if wal == 0:
            uri += "&immutable=1"
        return sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, isolation_level=None)

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None

    def _writable_again(self) -> None:
        """A store opened read-only: open it for writing if it can be now, else raise why not."""
        with self._errors("write"):
            probe = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            try:
                self._prepare(probe)
            finally:
                probe.close()
        self._set_read_only(None)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        if self.read_only is not None:
            self._writable_again()
        with self._errors("write"):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite rolls back by itself after some errors
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        if self.read_only is not None and time.monotonic() >= self._retry_at:
            self._retry_at = time.monotonic() + RETRY_WRITABLE_S
            with contextlib.suppress(StoreError):  # still read-only: read it as it is
                self._writable_again()
        with self._errors("read"):
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
                if self.read_only is not None:  # an immutable snapshot: the next read looks anew
                    self.close()

    @contextmanager
    def _errors(self, action: str = "open") -> Iterator[None]:
        """SQLite's own failures, as errors that say what failed on which file and what to do."""
        try:
            yield
        except sqlite3.OperationalError as err:
            raise self._operational(action, err) from err
        except sqlite3.DatabaseError as err:
            if type(err) is not sqlite3.DatabaseError:  # IntegrityError etc.: a kfnb bug
                raise
            raise StoreCorrupt(
                f"the run store is not a usable kfnb database ({err})",
                fix=f"move it away (kfnb starts a new one) or point {HOME_ENV} at another folder",
                where=str(self.path),
            ) from err

    def _operational(self, action: str, err: sqlite3.OperationalError) -> StoreError:
        text = str(err)
        where = str(self.path)
        if _locked(text):
            return StoreLocked(
                f"cannot {action} the run store: another process kept it locked for "
                f"{self.busy_timeout:g} s",
                fix="try again, or find the process that holds it",
                where=where,
            )
        for needle, kind, problem, fix in _FAILURES:
            if needle in text:
                # what the folder shows says more than SQLite's words ("disk I/O error")
                kind, problem, fix = _diagnose(self.path) or (kind, problem, fix)
                return kind(
                    f"cannot {action} the run store: {problem} ({text})",
                    fix=fix.format(folder=self.path.parent, env=HOME_ENV),
                    where=where,
                )
        return StoreError(f"cannot {action} the run store: {text}", where=where)


def _locked(text: str) -> bool:
    return "locked" in text or "busy" in text


def _diagnose(path: Path) -> tuple[type[StoreError], str, str] | None:
    """Why files cannot be written beside ``path``, as the file system shows it: ``(error class,
    problem, fix)`` with ``{folder}`` and ``{env}`` to fill in, or None when it shows nothing
    wrong."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        return (
            StoreUnavailable,
            "its folder is a file, not a folder",
            "move that file away, or point {env} at a folder",
        )
    if not folder.is_dir():
        return (
            StoreUnavailable,
            "its folder does not exist",
            "create {folder}, or point {env} at an existing writable folder",
        )
    try:
        fs = os.statvfs(folder)
    except OSError:
        return None
    if fs.f_flag & os.ST_RDONLY:
        return (
            StoreReadOnly,
            "the file system that holds it is mounted read-only",
            "remount it read-write, or point {env} at a folder on a writable file system",
        )
    free = (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) * fs.f_frsize
    if free < FULL_BYTES:
        return (
            StoreDiskFull,
            f"the disk that holds it is full ({free // 1024} KiB free)",
            "free space on that disk (at {folder}), or point {env} at a folder on another disk",
        )
    files = [folder, *(p for p in _store_files(path) if p.exists())]
    if not all(os.access(p, os.W_OK) for p in files):
        return (
            StoreReadOnly,
            "this user may not write it",
            "make {folder} and the kfnb.db* files in it writable by this user, "
            "or point {env} at a writable folder",
        )
    return None


def _store_files(path: Path) -> list[Path]:
    return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))]


#: SQLite failures a user can act on: (text in the error, the error, what it means, what to do)
_FAILURES: tuple[tuple[str, type[StoreError], str, str], ...] = (
    (
        "database or disk is full",
        StoreDiskFull,
        "the disk that holds it is full",
        "free space on that disk (at {folder}), or point {env} at a folder on another disk",
    ),
    (
        "disk I/O error",
        StoreUnavailable,
        "the disk failed to read or write it",
        "check the disk that holds {folder} (unmounted, failing, out of space), "
        "or point {env} at a folder on another disk",
    ),
    (
        "readonly database",
        StoreReadOnly,
        "this process may not write it",
        "make {folder} and the kfnb.db* files in it writable by this user, "
        "or point {env} at a writable folder",
    ),
    (
        "unable to open database file",
        StoreUnavailable,
        "the file cannot be opened or created",
        "make {folder} exist and be writable by this user on a file system mounted read-write "
        "(SQLite also creates kfnb.db-wal and kfnb.db-shm beside kfnb.db), or point {env} at "
        "a writable folder",
    ),
)
