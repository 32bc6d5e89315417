"""Auto-responders (Users & Groups > Auto-Responders), following RFC 3834:
never answer the null sender, automatic or bulk mail, mailing lists, or
mailer daemons; answer each sender at most once per N days; the reply is
marked Auto-Submitted: auto-replied and sent with the null sender so it
cannot itself be answered or bounced back."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.policy import SMTP

from firmware.config import transaction
from firmware.mail.headers import decode, unfolded_headers

from . import settings as keys

_DAEMON_LOCALS = ("mailer-daemon", "postmaster", "listserv", "majordomo", "noreply", "no-reply",
                  "nobody")
_LIST_HEADERS = ("list-id", "list-help", "list-unsubscribe", "list-subscribe", "list-post",
                 "list-owner", "list-archive", "mailing-list")


def why_not(sender: str, message: bytes) -> str | None:
    """The reason not to answer, or None when an answer may go out."""
    if not sender:
        return "null sender"
    local = sender.rpartition("@")[0].lower()
    if local in _DAEMON_LOCALS or local.startswith("owner-") or local.endswith(("-request", "-owner")):
        return "sender is a mailer daemon or list address"
    for name, value in unfolded_headers(message):
        value = value.strip().lower()
        if name == "auto-submitted" and value != "no":
            return f"Auto-Submitted: {value}"
        if name == "precedence" and value in ("bulk", "list", "junk"):
            return f"Precedence: {value}"
        if name in _LIST_HEADERS:
            return f"{name} header (mailing list)"
    return None


def claim(store, user: str, sender: str, settings, now: float | None = None) -> bool:
    """Records that `user` answers `sender` now; False if it already did
    within the setting's number of days."""
    now = time.time() if now is None else now
    window = settings[keys.RESPONDER_DAYS] * 86400
    sender = sender.lower()
    with transaction(store.db):
        row = store.db.execute("SELECT answered FROM mail_responder_log WHERE name = ? AND sender = ?",
                               [user, sender]).fetchone()
        if row and now - row[0] < window:
            return False
        store.db.execute("INSERT INTO mail_responder_log(name, sender, answered) VALUES(?, ?, ?) "
                         "ON CONFLICT(name, sender) DO UPDATE SET answered = excluded.answered",
                         [user, sender, now])
    return True


def build_reply(responder, user_address: str, sender: str, message: bytes) -> bytes:
    """The reply's content; submitting it adds its Date and Message-ID."""
    original = dict((n, v) for n, v in reversed(list(unfolded_headers(message))))
    reply = EmailMessage(policy=SMTP)
    reply["From"] = user_address
    reply["To"] = sender
    subject = decode(original.get("subject", "")).strip()
    reply["Subject"] = responder.subject or (f"Auto: {subject}" if subject else "Automatic reply")
    reply["Auto-Submitted"] = "auto-replied"
    if original.get("message-id"):
        reply["In-Reply-To"] = original["message-id"]
        reply["References"] = original["message-id"]
    reply.set_content(responder.message)
    return reply.as_bytes()
