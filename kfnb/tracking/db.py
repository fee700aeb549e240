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
chained to SQLite's error.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import StoreError
from .schema import migrate

BUSY_TIMEOUT_S = 30.0
HOME_ENV = "KFNB_HOME"


class Database:
    """The store's SQLite file; ``read()`` and ``write()`` give a connection in a transaction."""

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        with self._errors():
            conn = self._connection()
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: a property of the file
            migrate(conn, path)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        # (a connection inherited through fork() is dropped, not closed: closing it could
        # release locks the parent still holds)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._local.conn = conn
        self._local.pid = os.getpid()
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
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
        with self._errors("read"):
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

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
            raise StoreError(
                f"the run store is not a usable kfnb database ({err})",
                fix=f"move it away (kfnb starts a new one) or point {HOME_ENV} at another folder",
                where=str(self.path),
            ) from err

    def _operational(self, action: str, err: sqlite3.OperationalError) -> StoreError:
        text = str(err)
        where = str(self.path)
        if "locked" in text or "busy" in text:
            return StoreError(
                f"cannot {action} the run store: another process kept it locked for "
                f"{self.busy_timeout:g} s",
                fix="try again, or find the process that holds it",
                where=where,
            )
        for needle, problem, fix in _FAILURES:
            if needle in text:
                return StoreError(
                    f"cannot {action} the run store: {problem} ({text})",
                    fix=fix.format(folder=self.path.parent, env=HOME_ENV),
                    where=where,
                )
        return StoreError(f"cannot {action} the run store: {text}", where=where)


#: SQLite failures a user can act on: (text in the error, what it means, what to do)
_FAILURES: tuple[tuple[str, str, str], ...] = (
    (
        "database or disk is full",
        "the disk that holds it is full",
        "free space on that disk, or point {env} at a folder on another disk",
    ),
    (
        "disk I/O error",
        "the disk failed to read or write it",
        "check the disk that holds {folder} (unmounted, failing, out of space), "
        "or point {env} at a folder on another disk",
    ),
    (
        "readonly database",
        "this process may not write it",
        "make {folder} and the kfnb.db* files in it writable by this user, "
        "or point {env} at a writable folder",
    ),
    (
        "unable to open database file",
        "the file cannot be opened or created",
        "make {folder} exist and be writable by this user on a file system mounted read-write "
        "(SQLite also creates kfnb.db-wal and kfnb.db-shm beside kfnb.db), or point {env} at "
        "a writable folder",
    ),
)
