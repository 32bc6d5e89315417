"""A SQLite index of the quarantine for searching and paginated listings.

The held files stay the truth: the index can be deleted, damaged or left
behind by other firmware and is rebuilt from them. Each search first brings
it up to date as the queue's index does (firmware.mail.spool_index, which
both share).

Besides the envelope, a row keeps what the held message's own header says
about its score: X-Spam-Score and X-Spam-Report, which the box wrote itself
at the end of DATA (a client's fields of those names are removed there)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from .headers import unfolded_headers
from .queue import MAGIC, Envelope, NotInQueue, QueueError
from .spool_index import SpoolIndex

STATE = "hold"
_SCHEMA_VERSION = "2"   # 2: the state column of the shared SpoolIndex
# The header block of a held message is read from at most this much of its file.
_HEAD_READ = 64 * 1024
MAX_PAGE = 500

log = logging.getLogger("gatebox.quarantine")


@dataclass(frozen=True)
class Row:
    id: str
    kind: str
    reason: str
    sender: str
    header_from: str
    recipients: list
    subject: str
    received: float
    score: float | None
    report: str
    size: int


@dataclass(frozen=True)
class Search:
    """What the admin page, the CLI and the digest ask for. Text terms match
    anywhere in their field, case-insensitively; dates are epoch seconds,
    `since` inclusive and `until` exclusive."""
    sender: str = ""
    recipient: str = ""
    subject: str = ""
    kind: str = ""
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class Page:
    rows: list
    total: int
    offset: int
    limit: int


def _kind(last_error: str) -> tuple[str, str]:
    kind, _, reason = last_error.partition(":")
    return (kind if kind in ("virus", "spam") else "other"), reason.strip()


def _score(text: str) -> float | None:
    try:
        value = float(text.strip().split()[0])
    except (ValueError, IndexError):
        return None
    return value if -1e6 < value < 1e6 else None


def _like(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class QuarantineIndex(SpoolIndex):
    TABLE = "items"
    STATES = (STATE,)
    SCHEMA_VERSION = _SCHEMA_VERSION
    SCHEMA = """
        CREATE TABLE items (
            qid TEXT PRIMARY KEY, state TEXT NOT NULL, inode INTEGER NOT NULL, kind TEXT NOT NULL,
            reason TEXT NOT NULL, sender TEXT NOT NULL, header_from TEXT NOT NULL,
            recipients TEXT NOT NULL, recipients_text TEXT NOT NULL, subject TEXT NOT NULL,
            received REAL NOT NULL, score REAL, report TEXT NOT NULL, size INTEGER NOT NULL);
        CREATE INDEX items_received ON items(received, qid);
        CREATE INDEX items_kind ON items(kind, received);
    """

    def read(self, state: str, qid: str, inode: int):
        try:
            with open(self.spool.path(state, qid), "rb") as handle:
                head = handle.read(_HEAD_READ)
        except (FileNotFoundError, NotInQueue):
            return None  # released or deleted while we looked
        except OSError as error:
            log.warning("quarantine: %s cannot be read: %s", qid, error)
            return None
        end = head.find(b"\n", len(MAGIC))
        if not head.startswith(MAGIC) or end < 0:
            # Unreadable files are left out, as Quarantine.items() leaves them out.
            return None
        try:
            envelope = Envelope.from_json(head[len(MAGIC):end])
            kind, reason = _kind(str(envelope.last_error))
            recipients = [str(r.address) for r in envelope.recipients]
            facts = (str(envelope.sender), str(envelope.header_from), str(envelope.subject),
                     float(envelope.received), int(envelope.size))
        except (QueueError, ValueError, TypeError, KeyError, AttributeError, OverflowError):
            return None  # a file whose envelope is not what the box writes
        score, report = None, ""
        for name, value in unfolded_headers(head[end + 1:]):
            if name == "x-spam-score" and score is None:
                score = _score(value)
            elif name == "x-spam-report" and not report:
                report = value[:2000]
        sender, header_from, subject, received, size = facts
        return (qid, state, inode, kind, reason[:500], sender, header_from, json.dumps(recipients),
                "\n".join(recipients).lower(), subject, received, score, report, size)

    # ---- reading -------------------------------------------------------------
    def search(self, search: Search = Search(), offset: int = 0, limit: int = 50,
               sync: bool = True) -> Page:
        """Newest first."""
        if sync:
            self.sync()
        where, values = [], []
        for column, term in (("lower(sender)", search.sender),
                             ("recipients_text", search.recipient),
                             ("lower(subject)", search.subject)):
            if term:
                where.append(f"{column} LIKE ? ESCAPE '\\'")
                values.append(_like(term))
        if search.sender:
            # The sender shown is the envelope's, but a search finds the From: too.
            where[0] = f"({where[0]} OR lower(header_from) LIKE ? ESCAPE '\\')"
            values.insert(1, _like(search.sender))
        if search.kind:
            where.append("kind = ?")
            values.append(search.kind)
        if search.since is not None:
            where.append("received >= ?")
            values.append(float(search.since))
        if search.until is not None:
            where.append("received < ?")
            values.append(float(search.until))
        condition = " AND ".join(where) or "1"
        limit = max(1, min(int(limit), MAX_PAGE))
        offset = max(0, int(offset))
        total = self.db.execute(f"SELECT COUNT(*) FROM items WHERE {condition}",
                                values).fetchone()[0]
        rows = self.db.execute(
            f"SELECT qid, kind, reason, sender, header_from, recipients, subject, received, "
            f"score, report, size FROM items WHERE {condition} "
            f"ORDER BY received DESC, qid DESC LIMIT ? OFFSET ?", values + [limit, offset])
        return Page([_row(r) for r in rows], total, offset, limit)

    def get(self, qid: str, sync: bool = True) -> Row | None:
        if sync:
            self.sync()
        found = self.db.execute(
            "SELECT qid, kind, reason, sender, header_from, recipients, subject, received, "
            "score, report, size FROM items WHERE qid = ?", [qid]).fetchone()
        return _row(found) if found else None

    def recipients_with(self, kind: str, since: float | None = None) -> dict:
        """{recipient: [Row, ...]} of the items of a kind (newest first),
        held since `since` when given."""
        found: dict = {}
        offset = 0
        while True:
            page = self.search(Search(kind=kind, since=since), offset=offset, limit=MAX_PAGE,
                               sync=offset == 0)
            for row in page.rows:
                for recipient in row.recipients:
                    found.setdefault(recipient.lower(), []).append(row)
            offset += len(page.rows)
            if not page.rows or offset >= page.total:
                return found


def _row(r) -> Row:
    try:
        recipients = [str(a) for a in json.loads(r[5])]
    except (ValueError, TypeError):
        recipients = []
    return Row(r[0], r[1], r[2], r[3], r[4], recipients, r[6], r[7], r[8], r[9], r[10])
