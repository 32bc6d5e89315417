"""The Bayes database: its own SQLite file, DATA/antispam/bayes.db, so
learning a message (thousands of token rows) never holds the settings
database's lock.

- tokens: the 8-byte hash, in how many learnt spam and ham messages it was,
  and the day (days since the epoch) it was last learnt;
- totals: the spam and ham messages learnt;
- learnt: a digest of each learnt message with its class, so learning the
  same message again does nothing and learning it as the other class moves
  it (its tokens are taken off the old class first).

WAL journal, synchronous=NORMAL: a power cut may lose the last few learnt
messages, never the file. Counts read back are clamped (the file is data,
and data may be damaged). Size: at most `antispam.bayes_max_tokens` tokens;
past it the rarest old ones go first (see expire)."""

from __future__ import annotations

import operator
import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "bayes.db"
BUSY_MS = 10_000
# The reader smtpd classifies with runs on its event loop: a database that
# stays locked longer than this fails the read, and the layer is skipped for
# that message, rather than hold every session of the box.
READ_BUSY_MS = 100
_FIRST, _COUNTS = operator.itemgetter(0), operator.itemgetter(1, 2)
BATCH = 500                 # host parameters per statement, well under SQLite's limit
DAY = 86400
RARE_AGE_DAYS = 30
OPEN_ATTEMPTS = 100

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tokens (hash INTEGER PRIMARY KEY, spam INTEGER NOT NULL DEFAULT 0, "
    "ham INTEGER NOT NULL DEFAULT 0, seen INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS tokens_seen ON tokens(seen)",
    "CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "spam INTEGER NOT NULL DEFAULT 0, ham INTEGER NOT NULL DEFAULT 0)",
    "INSERT OR IGNORE INTO totals(id, spam, ham) VALUES (1, 0, 0)",
    "CREATE TABLE IF NOT EXISTS learnt (digest BLOB PRIMARY KEY, spam INTEGER NOT NULL, "
    "day INTEGER NOT NULL, source TEXT NOT NULL DEFAULT '') WITHOUT ROWID",
)


def path_of(data_dir) -> Path:
    return Path(data_dir) / "antispam" / DB_NAME


def today(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // DAY)


@dataclass(frozen=True)
class Totals:
    spam: int
    ham: int
    tokens: int


@dataclass(frozen=True)
class Learnt:
    spam: int
    ham: int


class _Held:
    """A thread's connection: closed when the thread's local data goes."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __del__(self):
        self.db.close()


class BayesStore:
    """One per process and data directory; each thread gets its own
    connection, closed when the thread ends (its thread-local goes, and
    only a weak reference is kept for close())."""

    def __init__(self, data_dir, read_only: bool = False):
        self.path = path_of(data_dir)
        self.read_only = read_only
        self._local = threading.local()
        self._lock = threading.Lock()
        self._schema_done = False
        self._connections: weakref.WeakSet = weakref.WeakSet()

    def _open(self) -> sqlite3.Connection:
        if self.read_only:
            return self._open_reader()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(self.path, timeout=BUSY_MS / 1000, isolation_level=None,
                             check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        # Switching the journal mode answers "locked" at once, without the
        # busy handler, while another connection opens the new file: retry.
        for attempt in range(OPEN_ATTEMPTS):
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == OPEN_ATTEMPTS - 1:
                    db.close()
                    raise
                time.sleep(0.02)
        db.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            if not self._schema_done:
                db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA:
                        db.execute(statement)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                self._schema_done = True
        try:
            os.chmod(self.path, 0o600)
        except OSError:
            pass
        return db

    def _open_reader(self) -> sqlite3.Connection:
        """The classifier's connection: it never creates or changes the file
        (the writers do, and WAL mode persists in it) and waits at most
        READ_BUSY_MS for a lock."""
        # mode=rw: a file that is not there (yet, or any more) is an error, not a new empty one.
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True,
                             timeout=READ_BUSY_MS / 1000, isolation_level=None,
                             check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {READ_BUSY_MS}")
        db.execute("PRAGMA query_only = ON")
        return db

    def exists(self) -> bool:
        return self.path.exists()

    @property
    def db(self) -> sqlite3.Connection:
        held = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = _Held(self._open())
            with self._lock:
                self._connections.add(held)
        return held.db

    def close(self):
        with self._lock:
            for held in list(self._connections):
                held.db.close()
            self._connections = weakref.WeakSet()
        self._local = threading.local()

    @contextmanager
    def write(self):
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ---- reading --------------------------------------------------------------
    def learnt(self) -> Learnt:
        """How many messages were learnt as each class: what every message's
        classification needs, without counting the tokens (a table scan)."""
        spam, ham = self.db.execute("SELECT spam, ham FROM totals WHERE id = 1").fetchone() or (0, 0)
        return Learnt(max(int(spam or 0), 0), max(int(ham or 0), 0))

    def totals(self) -> Totals:
        learnt = self.learnt()
        count = self.db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0]
        return Totals(learnt.spam, learnt.ham, count)

    def counts(self, hashes: list[int]) -> dict[int, tuple[int, int]]:
        """(spam, ham) of each token the database knows. The database is not
        trusted: a count that is NULL, negative or not a number reads as 0.
        SQLite does that clamping, not a Python step per token."""
        found = {}
        for start in range(0, len(hashes), BATCH):
            chunk = hashes[start:start + BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT hash, MAX(IFNULL(CAST(spam AS INTEGER), 0), 0), "
                f"MAX(IFNULL(CAST(ham AS INTEGER), 0), 0) FROM tokens WHERE hash IN ({marks})",
                chunk).fetchall()
            found.update(zip(map(_FIRST, rows), map(_COUNTS, rows)))
        return found

    def learnt_as(self, digest: bytes) -> bool | None:
        """True: learnt as spam, False: as ham, None: not learnt."""
        row = self.db.execute("SELECT spam FROM learnt WHERE digest = ?", [digest]).fetchone()
        return None if row is None else bool(row[0])

    # ---- writing --------------------------------------------------------------
    def learn(self, digest: bytes, hashes: list[int], spam: bool, source: str = "",
              now: float | None = None) -> str:
        """'learnt', 'already' or 'moved' (it was learnt as the other class)."""
        day = today(now)
        column, other = ("spam", "ham") if spam else ("ham", "spam")
        with self.write() as db:
            row = db.execute("SELECT spam FROM learnt WHERE digest = ?", [digest]).fetchone()
            if row is not None and bool(row[0]) == spam:
                return "already"
            if row is not None:
                for start in range(0, len(hashes), BATCH):
                    chunk = hashes[start:start + BATCH]
                    marks = ",".join("?" * len(chunk))
                    db.execute(f"UPDATE tokens SET {other} = MAX({other} - 1, 0) "
                               f"WHERE hash IN ({marks})", chunk)
                db.execute(f"UPDATE totals SET {other} = MAX({other} - 1, 0) WHERE id = 1")
            db.executemany(
                f"INSERT INTO tokens(hash, {column}, seen) VALUES (?, 1, ?) ON CONFLICT(hash) "
                f"DO UPDATE SET {column} = {column} + 1, seen = excluded.seen",
                [(h, day) for h in hashes])
            db.execute(f"UPDATE totals SET {column} = {column} + 1 WHERE id = 1")
            db.execute("INSERT INTO learnt(digest, spam, day, source) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(digest) DO UPDATE SET spam = excluded.spam, day = excluded.day, "
                       "source = excluded.source", [digest, int(spam), day, source[:40]])
            if row is not None:
                db.execute("DELETE FROM tokens WHERE spam <= 0 AND ham <= 0")
            return "learnt" if row is None else "moved"

    def expire(self, max_tokens: int, now: float | None = None) -> int:
        """Down to 90% of max_tokens when over it: first tokens seen in one
        message only and not learnt for RARE_AGE_DAYS, then the least
        recently learnt of the rest, rarest first. Returns the tokens removed."""
        count = self.db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0]
        if count <= max_tokens:
            return 0
        excess = count - int(max_tokens * 0.9)
        removed = 0
        with self.write() as db:
            removed += db.execute(
                "DELETE FROM tokens WHERE hash IN (SELECT hash FROM tokens WHERE spam + ham <= 1 "
                "AND seen < ? ORDER BY seen LIMIT ?)", [today(now) - RARE_AGE_DAYS, excess]).rowcount
            if removed < excess:
                removed += db.execute(
                    "DELETE FROM tokens WHERE hash IN (SELECT hash FROM tokens "
                    "ORDER BY seen, spam + ham LIMIT ?)", [excess - removed]).rowcount
        return removed

    def reset(self):
        with self.write() as db:
            db.execute("DELETE FROM tokens")
            db.execute("DELETE FROM learnt")
            db.execute("UPDATE totals SET spam = 0, ham = 0 WHERE id = 1")
        self.db.execute("VACUUM")


_stores: dict[tuple[Path, bool], BayesStore] = {}
_stores_lock = threading.Lock()
# Each message asks for its store: the name it was asked by is remembered, so
# the path is resolved (several system calls) once per name, not per message.
_by_name: dict[tuple[str, bool], BayesStore] = {}


def for_data(data_dir, read_only: bool = False) -> BayesStore:
    """The process's BayesStore for a data directory; read_only: the one that
    classifies, which only reads and waits at most READ_BUSY_MS for a lock."""
    name = (str(data_dir), read_only)
    found = _by_name.get(name)
    if found is not None:
        return found
    key = (path_of(data_dir).resolve(), read_only)
    with _stores_lock:
        found = _stores.get(key)
        if found is None:
            found = _stores[key] = BayesStore(data_dir, read_only)
        _by_name[name] = found
        return found
