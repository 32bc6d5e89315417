"""RFC 3464 delivery status notifications for mail that cannot be delivered,
sent to the envelope sender, with a copy to the administrator when
"Forward copies of undeliverable messages to administrator" is on."""

from __future__ import annotations

import email.utils
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP

from .addresses import is_clean
from .headers import header_block, safe_text
from .queue import Envelope, Recipient
from .submit import Submission, mailer_daemon


def admin_address(settings) -> str:
    configured = settings["email.admin_address"]
    if configured:
        return configured
    domain = settings["email.domain"]
    if domain == "*":
        domain = settings["system.hostname"]
    return f"postmaster@{domain}"


def _status_of(detail: str, failed: bool) -> str:
    parts = detail.split()
    if len(parts) > 1 and parts[1].count(".") == 2 and parts[1][0] in "245":
        return parts[1]
    return "5.0.0" if failed else "4.0.0"


def _diagnostic(detail: str) -> str:
    parts = detail.split(" ", 1)
    if parts[0].isdigit():
        return f"smtp; {detail}"
    return f"x-gatebox; {detail}"


def _fields(pairs) -> Message:
    block = Message()
    for name, value in pairs:
        # Addresses and remote replies: a line break here would be a header of its own.
        block[name] = safe_text(value, 900)
    return block


def _notified(envelope: Envelope) -> str:
    """The envelope sender to notify, or "" for none (the null sender, or an
    address no header or command may carry, told to the administrator instead)."""
    return envelope.sender if envelope.sender and is_clean(envelope.sender) else ""


def build(envelope: Envelope, failed: list[Recipient], original: bytes, settings,
          reason: str = "") -> bytes:
    hostname = settings["system.hostname"]
    text_lines = [
        f"This is the mail system at host {hostname}.",
        "",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients. It's attached below.",
        "",
    ]
    if reason:
        text_lines += [safe_text(reason, 900), ""]
    for recipient in failed:
        text_lines.append(f"<{safe_text(recipient.original or recipient.address)}>: "
                          f"{safe_text(recipient.detail, 900)}")
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <{mailer_daemon(settings)}>"
    report["To"] = _notified(envelope) or admin_address(settings)
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Auto-Submitted"] = "auto-replied"
    text = "\n".join(text_lines) + "\n"
    report.attach(MIMEText(text, "plain", "us-ascii" if text.isascii() else "utf-8"))

    per_message = _fields([("Reporting-MTA", f"dns; {hostname}"),
                           ("X-Gatebox-Queue-ID", envelope.id),
                           ("Arrival-Date", email.utils.formatdate(envelope.received, localtime=True))])
    blocks = [per_message]
    for recipient in failed:
        fields = [("Final-Recipient", f"rfc822; {recipient.address}")]
        if recipient.original and recipient.original != recipient.address:
            fields.append(("Original-Recipient", f"rfc822; {recipient.original}"))
        fields += [("Action", "failed"),
                   ("Status", _status_of(recipient.detail, True)),
                   ("Diagnostic-Code", _diagnostic(recipient.detail))]
        blocks.append(_fields(fields))
    status = MIMEBase("message", "delivery-status")
    status.set_payload(blocks)
    report.attach(status)

    headers = MIMEText("", "rfc822-headers")
    headers.set_type("text/rfc822-headers")
    headers.set_payload(header_block(original).decode("utf-8", "replace") + "\n")
    del headers["Content-Transfer-Encoding"]
    report.attach(headers)
    return report.as_bytes(policy=SMTP)


def bounce_submission(envelope: Envelope, failed: list[Recipient], original: bytes, settings,
                      reason: str = "") -> Submission | None:
    """The DSN to submit for these failed recipients, or None when there is
    no one to tell. Mail from the null sender is reported to the administrator."""
    if envelope.is_bounce:
        # A notification that cannot be delivered is logged and dropped: a
        # bounce about a bounce could loop forever.
        return None
    to = [_notified(envelope) or admin_address(settings)]
    if settings["email.forward_undeliverable_to_admin"]:
        to.append(admin_address(settings))
    to = list(dict.fromkeys(to))
    return Submission(sender="", recipients=to, message=build(envelope, failed, original, settings, reason),
                      origin="bounce", note=f"non-delivery notification for {envelope.id}")
