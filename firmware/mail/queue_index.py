"""A SQLite cache of the queue for sorted, paginated listings.

The spool files stay the truth: this index can be deleted at any time and is
rebuilt from them. Each listing first brings the index up to date, cheaply:

- a state directory whose mtime has not moved since the last sync is skipped
  (one stat per directory), unless that mtime was too close to the sync to be
  trusted (a change in the same clock tick would not move it);
- a changed directory is scanned once; a file is (re)read only when its name
  is new or its inode changed, because every spool write and rewrite renames
  a fresh file into place. So a queue of 100,000 messages costs a directory
  scan when something moved and almost nothing when nothing did.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .queue import STATES, NotInQueue, QueueError, Spool

INDEX_NAME = "index.sqlite"
# A directory mtime this close to the moment we scanned it may hide a later
# change within the same timestamp granularity; such a directory is scanned again.
_RACY_SECONDS = 2.0
_SCHEMA_VERSION = "2"

SORT_COLUMNS = {"id": "qid", "date": "received", "from": "from_sort"}
# The listings the admin page offers: name -> queue states shown.
VIEWS = {
    "all": STATES,
    "waiting": ("incoming", "active", "deferred"),
    "held": ("hold",),
    "undeliverable": ("deferred", "corrupt"),
}


def _view_condition(view: str) -> str:
    # Literal values, not parameters: SQLite uses a partial index only when the
    # query's WHERE clause repeats the index's own condition.
    if view == "all":
        return "1"
    return "state IN (" + ",".join(f"'{state}'" for state in VIEWS[view]) + ")"


def _index_statements() -> list:
    """One index per (view, sort column), each holding only qids in sort order,
    so any page at any depth is an index-only scan."""
    statements = []
    for view in VIEWS:
        for sort, column in SORT_COLUMNS.items():
            columns = "qid" if column == "qid" else f"{column}, qid"
            where = "" if view == "all" else f" WHERE {_view_condition(view)}"
            statements.append(f"CREATE INDEX IF NOT EXISTS by_{view}_{sort} ON messages({columns}){where}")
    return statements


@dataclass
class Row:
    qid: str
    state: str
    received: float
    sender: str
    header_from: str
    subject: str
    size: int
    recipients: list
    last_error: str
    attempts: int

    @property
    def shown_from(self) -> str:
        return self.header_from or self.sender or "<>"


@dataclass
class Page:
    rows: list
    total: int
    offset: int
    limit: int
    counts: dict  # state -> number of messages


class QueueIndex:
    def __init__(self, spool: Spool, path: str | os.PathLike | None = None):
        self.spool = spool
        self.path = Path(path) if path else spool.root / INDEX_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None,
                                  check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        # The index is disposable: durability is the spool's job, speed is ours.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")
        self._create()

    def close(self):
        self.db.close()

    def _create(self):
        row = None
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            row = self.db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        if row is not None and row[0] == _SCHEMA_VERSION:
            return
        # New, or made by other firmware: start again from the files.
        self.db.executescript("""
            DROP TABLE IF EXISTS messages;
            DROP TABLE IF EXISTS dirs;
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE dirs (state TEXT PRIMARY KEY, mtime_ns INTEGER, scanned REAL);
            CREATE TABLE messages (
                qid TEXT PRIMARY KEY, state TEXT NOT NULL, inode INTEGER NOT NULL,
                received REAL NOT NULL, sender TEXT, header_from TEXT, from_sort TEXT,
                subject TEXT, size INTEGER, recipients TEXT, last_error TEXT, attempts INTEGER);
            CREATE INDEX messages_state ON messages(state);
        """)
        for statement in _index_statements():
            self.db.execute(statement)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", [_SCHEMA_VERSION])

    # ---- keeping up with the files ------------------------------------------
    def sync(self) -> int:
        """Bring the index up to date with the files; returns how many files were read."""
        read = 0
        for state in STATES:
            directory = self.spool.dir(state)
            try:
                mtime_ns = directory.stat().st_mtime_ns
            except FileNotFoundError:
                mtime_ns = -1
            known = self.db.execute("SELECT mtime_ns, scanned FROM dirs WHERE state = ?",
                                    [state]).fetchone()
            if known and known["mtime_ns"] == mtime_ns and \
                    mtime_ns / 1e9 < known["scanned"] - _RACY_SECONDS:
                continue
            scanned = time.time()
            read += self._sync_state(state, directory)
            self.db.execute("INSERT OR REPLACE INTO dirs VALUES (?, ?, ?)", [state, mtime_ns, scanned])
        return read

    def _sync_state(self, state: str, directory: Path) -> int:
        try:
            on_disk = {entry.name: entry.inode() for entry in os.scandir(directory)
                       if not entry.name.startswith(".")}
        except FileNotFoundError:
            on_disk = {}
        indexed = dict(self.db.execute("SELECT qid, inode FROM messages WHERE state = ?", [state]))
        gone = [qid for qid in indexed if qid not in on_disk]
        fresh = [qid for qid, inode in on_disk.items() if indexed.get(qid) != inode]
        rows = []
        for qid in fresh:
            row = self._read(state, qid, on_disk[qid])
            if row is not None:
                rows.append(row)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("DELETE FROM messages WHERE qid = ? AND state = ?",
                                [(qid, state) for qid in gone])
            self.db.executemany("INSERT OR REPLACE INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return len(rows)

    def _read(self, state: str, qid: str, inode: int):
        try:
            envelope = self.spool.read_envelope(state, qid)
        except NotInQueue:
            return None  # moved or deleted while we looked; the next sync sees where
        except QueueError as error:
            return (qid, state, inode, 0.0, "?", "", "?", "", 0, "[]", str(error), 0)
        recipients = [r.address for r in envelope.pending] or [r.address for r in envelope.recipients]
        shown_from = envelope.header_from or envelope.sender
        return (qid, state, inode, envelope.received, envelope.sender, envelope.header_from,
                shown_from.lower(), envelope.subject, envelope.size, json.dumps(recipients),
                envelope.last_error, envelope.attempts)

    # ---- reading -------------------------------------------------------------
    def page(self, sort: str = "date", descending: bool = False, offset: int = 0,
             limit: int = 50, view: str = "all", sync: bool = True) -> Page:
        if sync:
            self.sync()
        column = SORT_COLUMNS[sort]
        order = "DESC" if descending else "ASC"
        condition = _view_condition(view)
        counts = dict(self.db.execute("SELECT state, COUNT(*) FROM messages GROUP BY state"))
        total = sum(counts.get(state, 0) for state in VIEWS[view])
        # Two steps: the page's qids from the view's covering index (cheap at
        # any depth), then just those rows.
        order_by = "qid" if column == "qid" else f"{column} {order}, qid"
        qids = [r[0] for r in self.db.execute(
            f"SELECT qid FROM messages INDEXED BY by_{view}_{sort} WHERE {condition} "
            f"ORDER BY {order_by} {order} LIMIT ? OFFSET ?", [limit, max(0, offset)])]
        found = {r["qid"]: r for r in self.db.execute(
            f"SELECT * FROM messages WHERE qid IN ({','.join('?' * len(qids))})", qids)}
        rows = [Row(r["qid"], r["state"], r["received"], r["sender"], r["header_from"],
                    r["subject"], r["size"], json.loads(r["recipients"]), r["last_error"],
                    r["attempts"]) for r in (found[q] for q in qids)]
        return Page(rows, total, offset, limit, counts)

    def counts(self) -> dict:
        self.sync()
        return dict(self.db.execute("SELECT state, COUNT(*) FROM messages GROUP BY state"))
