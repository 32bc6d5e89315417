"""Per-request access to the box: the settings store, the queue and the
name the audit log records for the signed-in administrator."""

from __future__ import annotations

from flask import current_app, g

from firmware.config import Store
from firmware.mail.queue import Spool
from firmware.mail.queue_ops import QueueOps


def store() -> Store:
    # One connection per request: SQLite connections must not be shared
    # between the threads gunicorn serves requests on.
    if "store" not in g:
        g.store = Store(current_app.config["GATEBOX_DATA"])
    return g.store


def spool() -> Spool:
    return Spool(current_app.config["GATEBOX_DATA"] / "queue")


def queue_ops() -> QueueOps:
    return QueueOps(spool(), store())


def admin_name() -> str | None:
    """The administrator whose session the box resumed for this request."""
    return g.get("admin")


def actor() -> str:
    """How the audit log names a change made here."""
    return f"{admin_name() or 'setup'} (web)"
