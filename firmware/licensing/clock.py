"""The day licensing judges expiry by.

Setting the clock back must not extend a license. The box keeps the latest
date it has seen (a high-water mark in the database's meta table) and
judges every expiry by the later of that mark and the clock. The issue
dates of the verified keys are a floor as well: a key issued on a day
proves that day has come, whatever the clock says.

`store` is the settings store or anything shaped like it (`.db`); the mark
is one row of its meta table, written only when the clock has moved past it,
so reading licenses stays a read nearly always."""

from __future__ import annotations

import datetime
import sqlite3
from dataclasses import dataclass

from . import expiry

HIGH_WATER_KEY = "license_high_water"


@dataclass(frozen=True)
class LicenseDay:
    day: datetime.date       # what expiry is judged by
    clock: datetime.date     # what the clock (or the caller's `now`) said

    @property
    def clock_behind(self) -> bool:
        return self.clock < self.day

    def describe(self) -> str:
        """A sentence for `license show` and the admin pages, or "" when the clock is right."""
        if not self.clock_behind:
            return ""
        return (f"the clock says {self.clock}, but this box has already seen {self.day}; "
                f"licenses are judged as of {self.day} (setting the clock back extends nothing)")


def high_water(store) -> datetime.date | None:
    row = store.db.execute("SELECT value FROM meta WHERE key = ?", [HIGH_WATER_KEY]).fetchone()
    if row is None:
        return None
    try:
        return datetime.date.fromisoformat(str(row[0]))
    except ValueError:
        return None  # not a date: the next write replaces it


def license_day(store, now=None, floor: datetime.date | None = None) -> LicenseDay:
    """The day to judge expiry by, recording the clock's date when it is the latest seen.
    `floor` is a date known to have come (the newest verified key's issue date)."""
    clock = expiry.today(now)
    seen = high_water(store)
    latest = max(d for d in (clock, seen, floor) if d is not None)
    if seen is None or latest > seen:
        _record(store, latest)
    return LicenseDay(latest, clock)


def _record(store, day: datetime.date):
    try:
        store.db.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE "
            "SET value = excluded.value WHERE excluded.value > meta.value OR "
            "meta.value NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'",
            [HIGH_WATER_KEY, day.isoformat()])
    except sqlite3.OperationalError:
        # A read-only or busy database: the day is still judged right now,
        # and recorded by the next reader that can write.
        pass
