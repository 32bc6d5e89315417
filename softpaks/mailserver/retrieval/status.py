"""Retrieval on the dashboard and on Email Server > Settings: when the next
retrieval runs, what the last one did, and the Retrieve now button."""

from __future__ import annotations

import datetime
import time
import zoneinfo

from firmware.mail import schedule, server_type

from . import state

PANEL_ID = "retrieval"
TITLE = {"multidrop": "Retrieval (Multi-drop)", "mirrored": "Retrieval (Mirrored)",
         "etrn": "Retrieval (ETRN)", "mailbag": "Retrieval (Mail-bagging)"}


def when(moment: float | None, settings) -> str:
    if moment is None:
        return "never"
    zone = zoneinfo.ZoneInfo(settings["system.timezone"])
    return datetime.datetime.fromtimestamp(moment, zone).strftime("%Y-%m-%d %H:%M %Z")


def lines(store, now: float | None = None) -> list[str]:
    settings = store.snapshot()
    runner = state.runner(store)
    now = time.time() if now is None else now
    # The service writes the next run as it reads the schedule; before it
    # has (not started yet) the schedule itself says.
    upcoming = runner.next_run if runner.next_run is not None and runner.next_run >= now - 60 \
        else schedule.next_retrieval_time(now, settings)
    shown = [f"Next retrieval: {when(upcoming, settings)}"]
    if runner.requested is not None:
        shown.append(f"Retrieve now requested at {when(runner.requested, settings)}")
    if runner.finished is None:
        shown.append("Last retrieval: none yet")
    else:
        shown.append(f"Last retrieval: {when(runner.finished, settings)}")
        shown.extend(line for line in runner.summary.splitlines() if line)
    for account in state.accounts(store):
        if not account.ok and account.last_error:
            shown.append(f"Last error of {account.account}: {account.last_error}")
    return shown


def panels(store, page: str) -> list[dict]:
    settings = store.snapshot()
    kind = server_type.in_effect(settings)
    # Remote POP accounts are fetched only where mailboxes are kept: in
    # Relay they wait unused, and a Retrieve now button would do nothing.
    if kind not in TITLE and not (server_type.keeps_mailboxes(settings)
                                  and _has_remote_accounts(store)):
        return []
    return [{"id": PANEL_ID, "title": TITLE.get(kind, "Retrieval (Remote POP)"),
             "lines": lines(store), "action_endpoint": "mailserver.retrieve_now",
             "action_label": "Retrieve now"}]


def _has_remote_accounts(store) -> bool:
    return store.db.execute("SELECT 1 FROM mail_remote_accounts WHERE enabled LIMIT 1").fetchone() \
        is not None
