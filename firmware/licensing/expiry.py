"""Where a granted SoftPak stands on a given day.

    ok       perpetual, or more than 30 days before the expiry date
    warning  from 30 days before the expiry date up to and including it
    grace    the 14 days after the expiry date: still on, loudly
    off      afterwards: the feature stops, its data stays
"""

from __future__ import annotations

import datetime

WARNING_DAYS = 30
GRACE_DAYS = 14

OK, WARNING, GRACE, OFF = "ok", "warning", "grace", "off"
RUNNING_STATES = (OK, WARNING, GRACE)


def today(now=None) -> datetime.date:
    """`now` may be a date, a datetime or None (the real clock); tests pass it."""
    if now is None:
        return datetime.date.today()
    if isinstance(now, datetime.datetime):
        return now.date()
    return now


def state(expiry: datetime.date | None, now=None) -> str:
    if expiry is None:
        return OK
    day = today(now)
    if day < expiry - datetime.timedelta(days=WARNING_DAYS):
        return OK
    if day <= expiry:
        return WARNING
    if day <= expiry + datetime.timedelta(days=GRACE_DAYS):
        return GRACE
    return OFF


def describe(expiry: datetime.date | None, now=None) -> str:
    """A sentence for `license show` and the admin pages."""
    if expiry is None:
        return "perpetual"
    day = today(now)
    current = state(expiry, now)
    if current == OK:
        return f"valid until {expiry}"
    if current == WARNING:
        left = (expiry - day).days
        return f"expires {expiry} ({'today' if left == 0 else f'in {left} days'}): renew now"
    grace_end = expiry + datetime.timedelta(days=GRACE_DAYS)
    if current == GRACE:
        return (f"expired {expiry}; grace period until {grace_end} "
                f"({(grace_end - day).days} days left), then the SoftPak stops")
    return f"expired {expiry}; stopped after the grace period ended {grace_end}"


def better(a: datetime.date | None, b: datetime.date | None) -> datetime.date | None:
    """Of two expiry dates granting the same SoftPak, the one lasting longer."""
    if a is None or b is None:
        return None
    return max(a, b)
