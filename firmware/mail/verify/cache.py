"""Callout answers kept in SQLite, with Postfix verify(8)'s times: an
address that exists is believed for 31 days and asked again after 7; one
that does not, for 3 days and asked again after 3 hours. An answer past its
refresh time is still used, and the caller asks again in the background, so
a busy sender never waits twice; past its expiry it is asked again at once.
Unreachable servers are never cached: that is a temporary state."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass

from firmware.config import db as database, transaction

DAY = 86400.0
POSITIVE_EXPIRE = 31 * DAY
POSITIVE_REFRESH = 7 * DAY
NEGATIVE_EXPIRE = 3 * DAY
NEGATIVE_REFRESH = 3 * 3600.0
KINDS = ("sender", "recipient", "catchall")
STATUSES = ("accepted", "refused")
MAX_REPLY = 300
MAX_ROWS = 100_000        # about 40 MB of database at most
MEMORY_ENTRIES = 10_000   # answers also kept in memory by each process
PRUNE_SECONDS = 3600.0

log = logging.getLogger("gatebox.verify")
_refreshing: set = set()   # background refreshes of stale answers, kept alive here


@dataclass(frozen=True)
class Cached:
    status: str          # accepted | refused
    reply: str           # the server's answer, for the log and the page
    checked: float

    @property
    def age(self) -> float:
        return time.time() - self.checked


def _times(status: str) -> tuple[float, float]:
    return (POSITIVE_EXPIRE, POSITIVE_REFRESH) if status == "accepted" else \
        (NEGATIVE_EXPIRE, NEGATIVE_REFRESH)


class VerifyCache:
    """One per policy chain: smtpd makes a new chain (and so a new cache
    object) whenever the settings generation moves, which Forget and every
    settings change do, so the answers it also keeps in memory (to spare a
    SQLite read per RCPT) never outlive what the table says."""

    def __init__(self, store, clock=time.time, memory_entries: int = MEMORY_ENTRIES):
        self.store = store
        self.clock = clock
        self._asking: dict = {}     # (kind, key) -> the callout under way
        self._memory: collections.OrderedDict = collections.OrderedDict()
        self._memory_entries = memory_entries

    def get(self, kind: str, address: str) -> tuple[Cached | None, bool]:
        """(answer or None when there is none or it expired, whether to ask again)."""
        key = (kind, address.lower())
        cached = self._memory.get(key)
        if cached is None:
            cached = self._read(*key)
            if cached is not None:
                self._remember(key, cached)
        else:
            self._memory.move_to_end(key)
        if cached is None:
            return None, True
        expire, refresh = _times(cached.status)
        age = self.clock() - cached.checked
        if age < 0 or age >= expire:
            self._memory.pop(key, None)
            return None, True
        return cached, age >= refresh

    def _read(self, kind: str, address: str) -> Cached | None:
        row = next(iter(self.store.db.query(
            "SELECT status, reply, checked FROM verify_cache WHERE kind = ? AND address = ?",
            [kind, address])), None)
        # The table is input like any other: a row this code did not write is ignored.
        if row is None or row["status"] not in STATUSES:
            return None
        try:
            checked = float(row["checked"])
        except (TypeError, ValueError):
            return None
        return Cached(row["status"], str(row["reply"])[:MAX_REPLY], checked)

    def _remember(self, key, cached: Cached):
        self._memory[key] = cached
        self._memory.move_to_end(key)
        while len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)

    def put(self, kind: str, address: str, status: str, reply: str):
        self._write(self._keep_in_memory(kind, address, status, reply))

    async def put_soon(self, kind: str, address: str, status: str, reply: str):
        """put() for the event loop: the row is written by a worker thread,
        on a connection of its own (database.writer)."""
        row = self._keep_in_memory(kind, address, status, reply)
        await asyncio.to_thread(self._write, row)

    def _keep_in_memory(self, kind: str, address: str, status: str, reply: str) -> list:
        if kind not in KINDS or status not in STATUSES:
            raise ValueError(f"cannot cache {kind}/{status}")
        now = self.clock()
        self._remember((kind, address.lower()), Cached(status, reply[:MAX_REPLY], now))
        return [kind, address.lower(), status, reply[:MAX_REPLY], now]

    def _write(self, row: list):
        with database.writer(self.store.path) as db, transaction(db):
            db.execute("INSERT OR REPLACE INTO verify_cache(kind, address, status, reply, checked) "
                       "VALUES (?, ?, ?, ?, ?)", row)

    def forget(self, kind: str | None = None):
        """Drop remembered answers, here and (through the settings generation,
        which makes smtpd build its chain anew) in every running process."""
        self._memory = collections.OrderedDict(
            (key, value) for key, value in self._memory.items() if kind is not None and key[0] != kind)
        with transaction(self.store.db):
            if kind is None:
                self.store.db.execute("DELETE FROM verify_cache")
            else:
                self.store.db.execute("DELETE FROM verify_cache WHERE kind = ?", [kind])
            self.store._bump_generation()

    def prune(self, max_rows: int = MAX_ROWS) -> int:
        """Drop what expired, then the oldest answers past max_rows (refusals
        first: strangers make those), so the table stays bounded whatever
        addresses strangers send. Returns how many rows went."""
        now = self.clock()
        with database.writer(self.store.path) as db, transaction(db):
            gone = db.execute(
                "DELETE FROM verify_cache WHERE (status = 'accepted' AND checked < ?) "
                "OR (status != 'accepted' AND checked < ?) OR checked > ?",
                [now - POSITIVE_EXPIRE, now - NEGATIVE_EXPIRE, now + DAY]).rowcount
            extra = db.execute("SELECT COUNT(*) FROM verify_cache").fetchone()[0] - max_rows
            if extra > 0:
                gone += db.execute(
                    "DELETE FROM verify_cache WHERE rowid IN (SELECT rowid FROM verify_cache "
                    "ORDER BY status = 'accepted', checked LIMIT ?)", [extra]).rowcount
        return gone

    async def ask(self, kind: str, key: str, ask) -> tuple[str, str, bool]:
        """(status, reply, from cache) for one cached question: a fresh answer
        from the cache; a stale one from the cache while a refresh runs behind;
        none, from the server now. Unreachable is never cached. Sessions
        asking the same question at once share one callout."""
        cached, refresh = self.get(kind, key)
        if cached is not None:
            if refresh and (kind, key) not in self._asking:
                _keep(asyncio.get_running_loop().create_task(self._ask_and_keep(kind, key, ask)))
            return cached.status, cached.reply, True
        answer = await self._ask_and_keep(kind, key, ask)
        return answer.status, answer.reply, False

    async def _ask_and_keep(self, kind: str, key: str, ask):
        running = self._asking.get((kind, key))
        if running is None:
            # The answer is kept by the task itself, so one that arrives after
            # the asking session gave up (its check's time ran out) still counts.
            running = asyncio.ensure_future(self._ask_then_keep(kind, key, ask))
            self._asking[(kind, key)] = running
            running.add_done_callback(lambda _f: self._asking.pop((kind, key), None))
        return await asyncio.shield(running)

    async def _ask_then_keep(self, kind: str, key: str, ask):
        answer = await ask()
        if answer.status != "unreachable":
            await self.put_soon(kind, key, answer.status, answer.reply)
        return answer


def _keep(task: asyncio.Task):
    """Keep a background refresh alive, and its failure in the log."""
    _refreshing.add(task)
    task.add_done_callback(_refreshing.discard)
    task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or log.warning(
        "refreshing a verification answer failed: %s", t.exception()))


async def keep_pruned(store, stop_event: asyncio.Event, every: float = PRUNE_SECONDS):
    """For the smtpd process: prune the cache now and every hour until stopped."""
    cache = VerifyCache(store)
    while not stop_event.is_set():
        try:
            gone = await asyncio.to_thread(cache.prune)
            if gone:
                log.info("verification cache: %d old answers dropped", gone)
        except Exception:
            log.exception("could not prune the verification cache")
        try:
            await asyncio.wait_for(stop_event.wait(), every)
        except asyncio.TimeoutError:
            pass
