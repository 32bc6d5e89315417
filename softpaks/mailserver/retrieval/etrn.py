"""Enhanced SMTP Turn Delivery (RFC 1985): ask the ISP's SMTP server to
start delivering what it holds for the Domain Name. The mail then arrives
on a new connection to the box's port 25, where the normal policy applies."""

from __future__ import annotations

import logging
import smtplib
import socket

from firmware.config.types import split_host_port
from firmware.mail.headers import safe_text

from . import AccountResult
from .state import record_account

ACCOUNT = "etrn"
SMTP_PORT = 25
TIMEOUT_SECONDS = 60
# RFC 1985's replies; only the 25x ones mean the ISP will deliver.
REPLIES = {
    250: "OK, queuing for the node started",
    251: "OK, no messages waiting for the node",
    252: "OK, pending messages for the node started",
    253: "OK, pending messages for the node started (a count was given)",
    458: "Unable to queue messages for the node",
    459: "Node not allowed",
}
ACCEPTED = (250, 251, 252, 253)

log = logging.getLogger("gatebox.retrieval")


def argument(domain: str, form: str) -> str:
    """`ETRN example.com`, or `ETRN #example.com` for an ISP that queues by
    domain name rather than by host (RFC 1985 section 5)."""
    return f"#{domain}" if form == "hash" else domain


def send(host: str, port: int, node: str, helo: str, timeout: float = TIMEOUT_SECONDS):
    """(code, text) of the ETRN reply. Raises OSError / SMTPException when
    the ISP cannot be reached or talks no SMTP."""
    with smtplib.SMTP(host, port, local_hostname=helo or None, timeout=timeout) as smtp:
        smtp.ehlo_or_helo_if_needed()
        code, text = smtp.docmd("ETRN", node)
        try:
            smtp.quit()
        except smtplib.SMTPException:
            pass
    return code, text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def describe(code: int, text: str) -> str:
    meaning = REPLIES.get(code, "an answer RFC 1985 does not define")
    return f"{code} {safe_text(text, 200)} ({meaning})"


def run(ctx) -> list[AccountResult]:
    settings = ctx.settings
    server = str(settings["email.isp_server"]).strip()
    if not server:
        result = AccountResult(ACCOUNT, ok=False, detail="no ISP Mail Server is set")
    else:
        host, port = split_host_port(server, SMTP_PORT)
        node = argument(str(settings["email.domain"]).strip().lower(), settings["email.etrn_form"])
        try:
            code, text = send(host, port, node, settings["system.hostname"])
        except (OSError, smtplib.SMTPException, socket.timeout) as error:
            result = AccountResult(ACCOUNT, ok=False,
                                   detail=f"ETRN {node} to {server}: {safe_text(str(error), 200)}")
        else:
            result = AccountResult(ACCOUNT, ok=code in ACCEPTED,
                                   detail=f"ETRN {node} to {server}: {describe(code, text)}")
    (log.info if result.ok else log.warning)("%s", result.summary)
    record_account(ctx.store, result, ctx.now)
    return [result]
