"""What each Anti-Spam layer passed, deferred and rejected, read from the
check_stats table the SMTP service fills ("dnsbl=rejected" per hour): per
hour for the last 24 hours and per local day for the last 30 days, with
zeros for quiet hours and days."""

from __future__ import annotations

import datetime
import time

from firmware.mail.stats import hour_of

LAYERS = (("blocked_ips", "Blocked IP Addresses"), ("antispam_lists", "Black and Whitelists"),
          ("dnsbl", "DNS RBL filters"), ("reverse_dns", "Reverse DNS"),
          ("greylist", "Greylist"))
OUTCOMES = ("passed", "deferred", "rejected")
HOURS = 24
DAYS = 30


def _names() -> list[str]:
    return [f"{layer}={outcome}" for layer, _ in LAYERS for outcome in OUTCOMES]


def _counts_since(store, start: int) -> list[tuple[int, str, str, int]]:
    """(hour, layer, outcome, count) for the layers' rows from `start` on."""
    names = _names()
    marks = ", ".join("?" for _ in names)
    rows = store.db.execute(
        f"SELECT hour, name, count FROM check_stats WHERE hour >= ? AND name IN ({marks})",
        [start, *names]).fetchall()
    return [(hour, *name.split("=", 1), count) for hour, name, count in rows]


def _empty() -> dict:
    return {layer: {outcome: 0 for outcome in OUTCOMES} for layer, _ in LAYERS}


def hourly(store, now: float | None = None) -> list[dict]:
    """[{"start": hour, "label": "14:00", "counts": {layer: {outcome: n}}}], oldest first."""
    end = hour_of(time.time() if now is None else now)
    hours = list(range(end - (HOURS - 1) * 3600, end + 1, 3600))
    buckets = {hour: _empty() for hour in hours}
    for hour, layer, outcome, count in _counts_since(store, hours[0]):
        if hour in buckets:
            buckets[hour][layer][outcome] += count
    return [{"start": hour, "label": time.strftime("%H:00", time.localtime(hour)),
             "counts": buckets[hour]} for hour in hours]


def _local_midnight(day: datetime.date) -> int:
    return int(time.mktime(day.timetuple()))


def daily(store, now: float | None = None) -> list[dict]:
    """As hourly, one bucket per local calendar day, the last one today."""
    today = datetime.date.fromtimestamp(time.time() if now is None else now)
    days = [today - datetime.timedelta(days=back) for back in range(DAYS - 1, -1, -1)]
    buckets = {day: _empty() for day in days}
    for hour, layer, outcome, count in _counts_since(store, hour_of(_local_midnight(days[0]))):
        day = datetime.date.fromtimestamp(hour)
        if day in buckets:
            buckets[day][layer][outcome] += count
    return [{"start": _local_midnight(day), "label": day.strftime("%d %b"),
             "counts": buckets[day]} for day in days]


def totals(buckets: list[dict]) -> dict:
    """{layer: {outcome: n}} summed over the buckets."""
    summed = _empty()
    for bucket in buckets:
        for layer, found in bucket["counts"].items():
            for outcome, count in found.items():
                summed[layer][outcome] += count
    return summed
