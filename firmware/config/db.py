"""The SQLite database on the data partition: how it is opened and how a
transaction is written. Nothing else of gatebox lives here, so every layer
may use it."""

from __future__ import annotations

import contextlib
import os
import sqlite3

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
