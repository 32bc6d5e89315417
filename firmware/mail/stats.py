"""Mail in / out / rejected per hour, for the dashboard, and per hour how
often each policy check refused mail (check_stats). Counted in memory by the
running services and added to the settings database every few seconds, so
a crash loses at most those seconds of statistics, never mail."""

from __future__ import annotations

import asyncio
import collections
import logging
import time

from firmware.config import db as database, transaction

FIELDS = ("received", "delivered", "rejected", "bounced")
FLUSH_SECONDS = 10.0

log = logging.getLogger("gatebox.stats")


def hour_of(moment: float) -> int:
    return int(moment // 3600 * 3600)


class MailStats:
    """Counted on the services' event loops; written by a worker thread on
    a connection of its own. The commit waits on the disk (fsync) and the
    write lock may wait on the other process's flush: on the event loop
    either would hold every session, and on the store's shared connection
    the loop's next read would queue behind it."""

    def __init__(self, store, clock=time.time):
        self.store = store
        self.clock = clock
        self._pending: dict = collections.defaultdict(collections.Counter)
        self._checks: dict = collections.defaultdict(collections.Counter)

    def count(self, field: str, amount: int = 1):
        self._pending[hour_of(self.clock())][field] += amount

    def count_check(self, check: str, amount: int = 1):
        """A refusal by the named check."""
        self._checks[hour_of(self.clock())][check] += amount

    def flush(self):
        self._write(*self._take())

    def _take(self) -> tuple[dict, dict]:
        pending, self._pending = self._pending, collections.defaultdict(collections.Counter)
        checks, self._checks = self._checks, collections.defaultdict(collections.Counter)
        return pending, checks

    def _write(self, pending: dict, checks: dict):
        if not pending and not checks:
            return
        # A stop's last flush waits there for a write still under way in the thread.
        with database.writer(self.store.path) as db, transaction(db):
            for hour, counts in checks.items():
                # An increment, which sqlite-utils' upsert (a replace) cannot say.
                for check, amount in counts.items():
                    db.execute(
                        "INSERT INTO check_stats(hour, name, count) VALUES (?, ?, ?) "
                        "ON CONFLICT(hour, name) DO UPDATE SET count = count + excluded.count",
                        [hour, check, amount])
            for hour, counts in pending.items():
                db.execute("INSERT OR IGNORE INTO mail_stats(hour) VALUES (?)", [hour])
                for field in FIELDS:
                    if counts[field]:
                        db.execute(
                            f"UPDATE mail_stats SET {field} = {field} + ? WHERE hour = ?",
                            [counts[field], hour])

    async def run(self):
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                try:
                    await asyncio.to_thread(self._write, *self._take())
                except Exception:
                    log.exception("could not record mail statistics")
        finally:
            # Stopping: what was counted since is written before the store closes.
            self.flush()


def hourly(store, hours: int = 24, now: float | None = None) -> list[dict]:
    """The last `hours` hours, oldest first, with zeros for quiet hours."""
    end = hour_of(time.time() if now is None else now)
    start = end - (hours - 1) * 3600
    rows = {row["hour"]: row for row in store.db.query(
        "SELECT * FROM mail_stats WHERE hour >= ? AND hour <= ?", [start, end])}
    return [{"hour": h, **{f: rows.get(h, {}).get(f, 0) for f in FIELDS}}
            for h in range(start, end + 1, 3600)]


def check_counts(store, since: float = 0.0) -> dict:
    """{check name: refusals} over the hours from `since` on."""
    return {row["name"]: row["total"] for row in store.db.query(
        "SELECT name, SUM(count) AS total FROM check_stats WHERE hour >= ? GROUP BY name",
        [hour_of(since)])}


def results_by_check(store, since: float = 0.0) -> dict:
    """{check: {result: count}} of what the checks found (counted as
    "check=result"), over the hours from `since` on."""
    found = {}
    for name, count in sorted(check_counts(store, since).items()):
        check, equals, result = name.partition("=")
        if equals:
            found.setdefault(check, {})[result] = count
    return found


def refusals_by_check(store, since: float = 0.0) -> dict:
    """{check: refusals} over the hours from `since` on."""
    return {name: count for name, count in sorted(check_counts(store, since).items())
            if "=" not in name}


def refusals_per_hour(store, hours: int = 24, now: float | None = None) -> dict:
    """{hour: {check: refusals}} over the last `hours` hours."""
    end = hour_of(time.time() if now is None else now)
    found: dict = {}
    for row in store.db.query("SELECT hour, name, count FROM check_stats WHERE hour >= ? AND "
                              "hour <= ? AND name NOT LIKE '%=%'",
                              [end - (hours - 1) * 3600, end]):
        found.setdefault(row["hour"], {})[row["name"]] = row["count"]
    return found
