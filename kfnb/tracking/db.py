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
        with self._errors():
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
        with self._errors():
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's own failures, as errors that say which store and what to do."""
        try:
            yield
        except sqlite3.OperationalError as err:
            text = str(err)
            if "locked" in text or "busy" in text:
                raise StoreError(
                    f"the run store {self.path} stayed locked by another process for "
                    f"{self.busy_timeout:g} s; try again, or find the process that holds it"
                ) from err
            raise StoreError(f"the run store {self.path}: {text}") from err
        except sqlite3.DatabaseError as err:
            if type(err) is not sqlite3.DatabaseError:  # IntegrityError etc.: a kfnb bug
                raise
            raise StoreError(
                f"the run store {self.path} is not a usable kfnb database ({err}). Fix: move "
                f"it away (kfnb starts a new one) or point KFNB_HOME at another folder"
            ) from err
