"""The SQLite database on the data partition: how it is opened and how a
transaction is written. Nothing else of gatebox lives here, so every layer
may use it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading

import sqlite_utils


def open(path: str | os.PathLike) -> sqlite_utils.Database:  # noqa: A001 (the module's verb)
    # Autocommit mode: every transaction is explicit (see transaction()).
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=30000")
    return db


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database, write: bool = True):
    """One explicit SQLite transaction. sqlite-utils' own write helpers must
    not be used inside it: some wrap their work in `with conn:`, which would
    commit this transaction half-way."""
    db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


_writers: dict[str, tuple] = {}
_writers_lock = threading.Lock()


@contextlib.contextmanager
def writer(path: str | os.PathLike):
    """The process's connection for writes made in worker threads, one at a
    time per database. On the event loop a commit waits on the disk (fsync)
    and on another process's write lock, holding every session; on the
    connection the loop reads through, the loop's next read would queue
    behind it. Opened on first use; closed by close_writer (Store.close)."""
    key = os.path.abspath(path)
    while True:
        with _writers_lock:
            found = _writers.get(key)
            if found is None:
                found = _writers[key] = (open(key), threading.Lock())
        db, lock = found
        with lock:
            # Closed meanwhile (close_writer): take the next one.
            if _writers.get(key) is not found:
                continue
            yield db
            return


def close_writer(path: str | os.PathLike):
    """Closes the path's writer connection once no thread is using it."""
    with _writers_lock:
        found = _writers.pop(os.path.abspath(path), None)
    if found is not None:
        db, lock = found
        with lock:
            db.conn.close()
