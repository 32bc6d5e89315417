"""The quarantine digest: one mail per recipient with spam held for them,
listing sender, subject, date and score, each with its two links.

It goes into the queue through submit (origin "notice") from the null
sender, so a digest that cannot be delivered is never bounced into a loop;
From is the Administrator Address. Only recipients of the box's own domains
get one. Everything taken from the held messages is sanitised for the plain
text and escaped for the HTML alternative."""

from __future__ import annotations

import logging
import time
from email.message import EmailMessage
from email.policy import SMTP
from html import escape

from firmware.mail.addresses import domain_of, is_clean
from firmware.mail.bounce import admin_address
from firmware.mail.headers import safe_text
from firmware.mail.quarantine import Quarantine
from firmware.mail.queue import Spool
from firmware.mail.queue_ops import picked_up_by_rescan
from firmware.mail.route import is_local_domain
from firmware.mail.submit import Submission, submit

from . import tokens
from .settings import DIGEST_URL, QUARANTINE_DAYS

ORIGIN = "notice"
AUTHOR = "Quarantine Digest"
MAX_LISTED = 200
LINK_PATH = "quarantine/link/"

log = logging.getLogger("gatebox.antispam")


def base_url(settings) -> str:
    configured = settings[DIGEST_URL]
    if configured:
        return configured
    return f"https://{settings['system.hostname']}/"


def lifetime_days(settings) -> int:
    """Spam is kept for the shorter of the two: the core bounds every kind."""
    return min(settings[QUARANTINE_DAYS], settings["email.quarantine_days"])


def links(data_dir, settings, row, recipient: str) -> dict:
    expires = row.received + lifetime_days(settings) * 86400
    base = base_url(settings) + LINK_PATH
    found = {"release": base + tokens.sign(data_dir, tokens.Grant(row.id, recipient, "release",
                                                                   expires))}
    if row.sender and is_clean(row.sender):
        found["allow"] = base + tokens.sign(data_dir, tokens.Grant(row.id, recipient, "allow",
                                                                   expires))
    return found


def _plain(value, limit: int) -> str:
    """Text from a held message made harmless for a mail line: control and
    format characters (line breaks, bidi overrides) become '?'; other
    Unicode stays, since subjects are often not English."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value or ""))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _date(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def _score(row) -> str:
    return f"{row.score:.1f}" if row.score is not None else "-"


def build(data_dir, settings, recipient: str, rows: list) -> bytes:
    shown = rows[:MAX_LISTED]
    more = len(rows) - len(shown)
    days = lifetime_days(settings)
    text = [f"Messages to you <{recipient}> were held as spam in the quarantine of "
            f"{safe_text(settings['system.hostname'], 100)}.",
            f"They are deleted after {days} days. To receive one, open its Release link.", ""]
    html_rows = []
    for row in shown:
        found = links(data_dir, settings, row, recipient)
        sender = _plain(row.header_from or row.sender, 120) or "(none)"
        subject = _plain(row.subject, 160) or "(no subject)"
        text += [f"From:    {sender}", f"Subject: {subject}",
                 f"Date:    {_date(row.received)}    Score: {_score(row)}",
                 f"Release: {found['release']}"]
        if "allow" in found:
            text.append(f"Release and always allow this sender: {found['allow']}")
        text.append("")
        allow = (f' | <a href="{escape(found["allow"])}">Release and always allow this sender</a>'
                 if "allow" in found else "")
        html_rows.append(
            f"<tr><td>{escape(sender)}</td><td>{escape(subject)}</td>"
            f"<td>{escape(_date(row.received))}</td><td>{escape(_score(row))}</td>"
            f'<td><a href="{escape(found["release"])}">Release</a>{allow}</td></tr>')
    if more:
        text.append(f"... and {more} more; ask the administrator.")
    text.append("Each link works once. They work from the office network only.")
    mail = EmailMessage()
    mail["From"] = f"{AUTHOR} <{admin_address(settings)}>"
    mail["To"] = recipient
    mail["Subject"] = f"Quarantine digest: {len(rows)} message(s) held as spam"
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content("\n".join(text) + "\n")
    html = ("<!doctype html><html><body>"
            f"<p>{escape(text[0])}<br>{escape(text[1])}</p>"
            "<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">"
            "<tr><th>From</th><th>Subject</th><th>Date</th><th>Score</th><th></th></tr>"
            + "".join(html_rows) + "</table>"
            + (f"<p>... and {more} more; ask the administrator.</p>" if more else "")
            + "<p>Each link works once. They work from the office network only.</p>"
            "</body></html>")
    mail.add_alternative(html, subtype="html")
    return mail.as_bytes(policy=SMTP)


def digest_rows(data_dir, settings, since: float | None = None) -> dict:
    """{local recipient: [rows]} of the spam held since `since`."""
    index = Quarantine(data_dir).index()
    try:
        found = index.recipients_with("spam", since)
    finally:
        index.close()
    return {recipient: rows for recipient, rows in found.items()
            if is_clean(recipient) and is_local_domain(domain_of(recipient), settings)}


def send(store, since: float | None = None) -> tuple[int, int]:
    """One digest to each recipient; returns (mails, messages listed)."""
    settings = store.snapshot()
    data_dir = store.data_dir
    spool = Spool(data_dir / "queue")
    mails = listed = 0
    for recipient, rows in sorted(digest_rows(data_dir, settings, since).items()):
        try:
            submit(spool, Submission(
                sender="", recipients=[recipient], origin=ORIGIN, direction="inbound",
                message=build(data_dir, settings, recipient, rows),
                note=f"quarantine digest ({len(rows)} message(s))"), picked_up_by_rescan, settings)
        except (OSError, ValueError) as error:
            log.error("quarantine digest to <%s> not queued: %s", safe_text(recipient), error)
            continue
        mails += 1
        listed += len(rows)
    log.info("quarantine digest: %d mail(s) listing %d message(s)", mails, listed)
    return mails, listed
