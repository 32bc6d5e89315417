"""Notices about an infected message, where the settings say:

- Notify Recipient If Virus Found: each LOCAL recipient (of the box's own
  domains) gets a short notice. Foreign recipients of outbound mail get
  none: they never were going to get the message from us;
- Notify Sender If Virus Found: only a sender of the box's own, i.e. a
  client in Trusted Networks or signed in (ctx.may_relay). Viruses forge
  the sender's address, so a notice to an outside sender would go to an
  innocent party;
- Send a Copy of Notices to the Administrator: one report to the
  Administrator Address (postmaster@<Domain Name> when it is empty), with
  the client and the whole envelope.

A notice never carries the infected message or any part of it. It goes into
the queue through ctx.submit (the one way into the queue) from the null
sender, so a notice that cannot be delivered is never bounced back into a
loop. A notice that cannot be queued is logged; it never changes what the
client is told about its message."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.policy import SMTP

from firmware.mail.addresses import domain_of, is_clean
from firmware.mail.bounce import admin_address
from firmware.mail.headers import safe_text, summary
from firmware.mail.policy import Context
from firmware.mail.route import is_local_domain
from firmware.mail.submit import Submission

from .settings import NOTIFY_ADMIN, NOTIFY_RECIPIENT, NOTIFY_SENDER

ORIGIN = "notice"
AUTHOR = "Anti-Virus"
MAX_LISTED = 20   # recipients named in the administrator's report

log = logging.getLogger("gatebox.antivirus")


def local_recipients(ctx: Context) -> list[str]:
    settings = ctx.settings
    return list(dict.fromkeys(r for r in ctx.recipients
                              if is_clean(r) and is_local_domain(domain_of(r), settings)))


def notified_sender(ctx: Context) -> str:
    """The sender to tell, or "" when there is none to tell safely."""
    if not ctx.may_relay or not ctx.sender or not is_clean(ctx.sender):
        return ""
    return ctx.sender


def _what_happened(quarantined: bool) -> str:
    return ("It is held in quarantine; only the administrator can release it."
            if quarantined else "It was refused and not delivered.")


def _facts(ctx: Context) -> tuple[str, str]:
    info = summary(ctx.message)
    subject = safe_text(info.subject, 200) or "(none)"
    return subject, safe_text(info.message_id, 200) or "(none)"


def build(settings, to: list[str], subject: str, lines: list[str]) -> bytes:
    notice = EmailMessage()
    notice["From"] = f"{AUTHOR} <{admin_address(settings)}>"
    notice["To"] = ", ".join(to)
    notice["Subject"] = subject
    notice["Auto-Submitted"] = "auto-generated"
    notice.set_content("\n".join(lines) + "\n")
    return notice.as_bytes(policy=SMTP)


def recipient_notice(ctx: Context, recipient: str, virus: str, quarantined: bool) -> Submission:
    subject, message_id = _facts(ctx)
    lines = [f"A message to you <{recipient}> contained a virus ({virus}).",
             _what_happened(quarantined), "",
             f"Sender:     <{safe_text(ctx.sender)}>" if ctx.sender else "Sender:     (none)",
             f"Subject:    {subject}",
             f"Message-ID: {message_id}", "",
             "The message is not attached. Ask the administrator if you expected it."]
    return Submission(sender="", recipients=[recipient], origin=ORIGIN, direction="inbound",
                      message=build(ctx.settings, [recipient], "Virus found in a message to you",
                                    lines),
                      note=f"virus notice to the recipient ({virus})")


def sender_notice(ctx: Context, sender: str, virus: str, quarantined: bool) -> Submission:
    subject, message_id = _facts(ctx)
    shown = ", ".join(f"<{safe_text(r)}>" for r in ctx.recipients[:MAX_LISTED])
    lines = [f"A message you sent contained a virus ({virus}).",
             _what_happened(quarantined), "",
             f"Recipients: {shown}",
             f"Subject:    {subject}",
             f"Message-ID: {message_id}", "",
             "Your computer may be infected: have it checked."]
    return Submission(sender="", recipients=[sender], origin=ORIGIN,
                      message=build(ctx.settings, [sender], "Virus found in a message you sent",
                                    lines),
                      note=f"virus notice to the sender ({virus})")


def admin_notice(ctx: Context, virus: str, quarantined: bool) -> Submission:
    subject, message_id = _facts(ctx)
    to = admin_address(ctx.settings)
    listed = ", ".join(f"<{safe_text(r)}>" for r in ctx.recipients[:MAX_LISTED])
    if len(ctx.recipients) > MAX_LISTED:
        listed += f" and {len(ctx.recipients) - MAX_LISTED} more"
    client = safe_text(ctx.client_ip)
    if ctx.auth_user:
        client += f" (signed in as {safe_text(ctx.auth_user)})"
    lines = [f"Virus found: {virus}",
             f"Action:     {'quarantined' if quarantined else 'rejected (554)'}", "",
             f"Client:     {client}",
             f"HELO:       {safe_text(ctx.helo) or '(none)'}",
             f"Sender:     <{safe_text(ctx.sender)}>",
             f"Recipients: {listed}",
             f"Subject:    {subject}",
             f"Message-ID: {message_id}",
             f"Size:       {ctx.message_length} octets"]
    return Submission(sender="", recipients=[to], origin=ORIGIN,
                      message=build(ctx.settings, [to], f"Virus found: {virus}", lines),
                      note=f"virus report to the administrator ({virus})")


def notices_for(ctx: Context, virus: str, quarantined: bool) -> list[Submission]:
    """The notices the settings ask for, not yet submitted."""
    settings = ctx.settings
    wanted = []
    if settings[NOTIFY_RECIPIENT]:
        wanted += [recipient_notice(ctx, r, virus, quarantined) for r in local_recipients(ctx)]
    sender = notified_sender(ctx)
    if settings[NOTIFY_SENDER] and sender:
        wanted.append(sender_notice(ctx, sender, virus, quarantined))
    if settings[NOTIFY_ADMIN]:
        wanted.append(admin_notice(ctx, virus, quarantined))
    return wanted


async def send_notices(ctx: Context, virus: str, quarantined: bool) -> list[str]:
    """Queue the notices; returns their queue ids."""
    wanted = notices_for(ctx, virus, quarantined)
    if not wanted:
        return []
    if ctx.submit is None:
        log.warning("warning: antivirus: %d notice(s) about %s not sent: no queue here",
                    len(wanted), virus)
        return []
    queued = []
    for submission in wanted:
        try:
            qid = await ctx.submit(submission)
        except (OSError, ValueError) as error:
            log.error("antivirus: cannot queue a notice to %s: %s",
                      ", ".join(submission.recipients), error)
            continue
        if qid:
            queued.append(qid)
    return queued
