"""Email Server > Scheduling: when outgoing Internet mail may be sent.

"Send Outgoing Internet EMail Immediately" sends at once. "Send/Retrieve
Internet EMail at Same Time" holds it for the next synchronisation, which
comes every N minutes (counted from midnight) by the Business, Evening or
Weekend schedule in force. Retrieval from the ISP always follows those ticks."""

from __future__ import annotations

import datetime
import zoneinfo

from firmware.config.types import DAYS

_STEP = datetime.timedelta(minutes=1)


def window(moment: datetime.datetime, settings) -> str:
    if DAYS[moment.weekday()] not in settings["email.business_week"].split(","):
        return "weekend"
    start, end = settings["email.business_day"].split("-")
    now = moment.strftime("%H:%M")
    return "business" if start <= now < end else "evening"


def interval(name: str, settings):
    value = settings[f"email.{name}_schedule"]
    return None if value == "never" else int(value)


def next_send_time(now: float, settings) -> float:
    """The earliest time >= now at which outgoing Internet mail may go."""
    if settings["email.send_mode"] == "immediately":
        return now
    tick = _next_tick(now, settings)
    return now + 7 * 86400.0 if tick is None else tick


def next_retrieval_time(now: float, settings) -> float | None:
    """The earliest time >= now at which the box fetches from the ISP (or
    sends ETRN / the mail-bagging finger): the same ticks as the held
    outgoing mail, whatever the send mode. None when every schedule is Never."""
    return _next_tick(now, settings)


def _next_tick(now: float, settings) -> float | None:
    zone = zoneinfo.ZoneInfo(settings["system.timezone"])
    moment = datetime.datetime.fromtimestamp(now, zone).replace(second=0, microsecond=0)
    if moment.timestamp() < now:
        moment += _STEP
    # Walk forward minute by minute (at most a week) to the first tick of
    # whichever schedule is in force then.
    for _ in range(8 * 24 * 60):
        every = interval(window(moment, settings), settings)
        if every and (moment.hour * 60 + moment.minute) % every == 0:
            return moment.timestamp()
        # Step in absolute time, then read the wall clock of the zone again
        # (daylight saving changes skip or repeat local minutes).
        moment = datetime.datetime.fromtimestamp(moment.timestamp() + 60, zone)
    return None


def is_internet(destination) -> bool:
    return destination.kind in ("smarthost", "mx")
