"""A SQLite cache of the queue for sorted, paginated listings.

The spool files stay the truth: this index can be deleted at any time and is
rebuilt from them. Each listing first brings the index up to date, cheaply,
as firmware.mail.spool_index (shared with the quarantine's index) does."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .queue import STATES, NotInQueue, QueueError
from .spool_index import SpoolIndex

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


class QueueIndex(SpoolIndex):
    TABLE = "messages"
    STATES = STATES
    SCHEMA_VERSION = _SCHEMA_VERSION
    SCHEMA = """
        CREATE TABLE messages (
            qid TEXT PRIMARY KEY, state TEXT NOT NULL, inode INTEGER NOT NULL,
            received REAL NOT NULL, sender TEXT, header_from TEXT, from_sort TEXT,
            subject TEXT, size INTEGER, recipients TEXT, last_error TEXT, attempts INTEGER);
        CREATE INDEX messages_state ON messages(state);
    """ + "".join(f"{statement};\n" for statement in _index_statements())

    def read(self, state: str, qid: str, inode: int):
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
