"""What the queue's index (queue_index) and the quarantine's
(quarantine_index) share: a SQLite cache of a Spool's state directories that
the files can always rebuild, kept up to date cheaply.

- A state directory whose mtime has not moved since the last sync is skipped
  (one stat per directory), unless that mtime was too close to the sync to be
  trusted (a change in the same clock tick would not move it).
- A changed directory is scanned once; a file is (re)read only when its name
  is new or its inode changed, because every spool write and rewrite renames
  a fresh file into place. So 100,000 files cost a directory scan when
  something moved and almost nothing when nothing did.
- An index made by other firmware (another schema version) is rebuilt; one
  that is not a database, or a damaged one, is deleted and rebuilt: the
  files are the truth."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from .queue import Spool

INDEX_NAME = "index.sqlite"
# A directory mtime this close to the moment we scanned it may hide a later
# change within the same timestamp granularity; such a directory is scanned again.
_RACY_SECONDS = 2.0

log = logging.getLogger("gatebox.queue")


class SpoolIndex:
    """Subclasses name their TABLE (with columns qid, state and inode, in that
    order, first), its SCHEMA (the script that creates it and its indexes),
    SCHEMA_VERSION, the STATES they index, and read(state, qid, inode): the
    table's row for one file, or None to leave it out."""
    TABLE: str
    SCHEMA: str
    SCHEMA_VERSION: str
    STATES: tuple

    def __init__(self, spool: Spool, path: str | os.PathLike | None = None):
        self.spool = spool
        self.path = Path(path) if path else spool.root / INDEX_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except sqlite3.DatabaseError as error:
            log.warning("index %s unreadable (%s); rebuilt from the files", self.path, error)
            self._discard()
            self._open()

    def _open(self):
        self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None,
                                  check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        try:
            # The index is disposable: durability is the spool's job, speed is ours.
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=OFF")
            self._create()
        except sqlite3.DatabaseError:
            self.db.close()
            raise
        width = len(self.db.execute(f"PRAGMA table_info({self.TABLE})").fetchall())
        self._insert = f"INSERT OR REPLACE INTO {self.TABLE} VALUES ({','.join('?' * width)})"

    def _discard(self):
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except FileNotFoundError:
                pass

    def close(self):
        self.db.close()

    def _create(self):
        row = None
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            row = self.db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        if row is not None and row[0] == self.SCHEMA_VERSION:
            return
        # New, or made by other firmware: start again from the files.
        self.db.executescript(f"""
            DROP TABLE IF EXISTS {self.TABLE};
            DROP TABLE IF EXISTS dirs;
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE dirs (state TEXT PRIMARY KEY, mtime_ns INTEGER, scanned REAL);
        """ + self.SCHEMA)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", [self.SCHEMA_VERSION])

    # ---- keeping up with the files ------------------------------------------
    def sync(self) -> int:
        """Bring the index up to date with the files; returns how many files were read."""
        read = 0
        for state in self.STATES:
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
        indexed = dict(self.db.execute(f"SELECT qid, inode FROM {self.TABLE} WHERE state = ?",
                                       [state]))
        gone = [qid for qid in indexed if qid not in on_disk]
        rows = [row for row in (self.read(state, qid, inode) for qid, inode in on_disk.items()
                                if indexed.get(qid) != inode) if row is not None]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(f"DELETE FROM {self.TABLE} WHERE qid = ? AND state = ?",
                                [(qid, state) for qid in gone])
            self.db.executemany(self._insert, rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return len(rows)

    def read(self, state: str, qid: str, inode: int):
        raise NotImplementedError
