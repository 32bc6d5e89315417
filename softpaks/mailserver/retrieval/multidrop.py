"""Multi-drop: one ISP mailbox holds all of the domain's mail. Each message's
envelope recipient comes from the header the ISP writes (Envelope Header),
its topmost line only, or the line the auto-detect probe learnt. Mail whose
recipient cannot be recovered, or that names no local user, alias or list
(or another domain), goes to the Send unaddressable mail user, else to
postmaster: never guessed from To or Cc, never relayed onwards."""

from __future__ import annotations

import email.utils
import logging
import secrets
import smtplib
import ssl
import time

from firmware.config import transaction
from firmware.config.types import split_host_port
from firmware.mail import addresses
from firmware.mail.headers import unfolded_headers

from .. import directory, routing, settings as keys
from . import Account, AccountResult, RetrievalContext, envelope
from .fetch import Recipients, fetch_account, session_limit
from .mailbox_client import (MailboxError, MessageRefused, default_port, open_mailbox,
                             tls_context)

ACCOUNT = "multidrop"
PROBE_HEADER = "X-Gatebox-Envelope-Probe"
PROBE_TIMEOUT = 300.0
PROBE_POLL_SECONDS = 2.0
log = logging.getLogger("gatebox.retrieval")


class DetectionError(Exception):
    """The probe could not be sent, did not arrive, or named no header."""


def account(settings) -> Account:
    """The multi-drop ISP mailbox from Email Server > Settings."""
    protocol, tls = settings["email.isp_protocol"], settings["email.isp_tls"]
    host, port = split_host_port(settings["email.isp_server"])
    return Account(ACCOUNT, host, port or default_port(protocol, tls), protocol, tls,
                   bool(settings["email.isp_tls_verify"]), settings["email.isp_login"],
                   settings["email.isp_password"])


def unaddressable_recipient(settings) -> str:
    """Where mail for no one goes: the Send unaddressable mail user, else postmaster."""
    domain = settings["email.domain"]
    user = settings[keys.UNADDRESSABLE_USER]
    if settings[keys.UNADDRESSABLE] == "user" and user:
        return f"{user}@{domain}"
    return f"postmaster@{domain}"


def local_recipient(store, settings, address: str) -> str | None:
    """ADDRESS when a local user, alias or list (or postmaster) answers to it."""
    parsed = addresses.parse(address)
    if not parsed.domain or parsed.domain.lower() not in directory.local_domains(settings):
        return None
    if parsed.local.lower() == "postmaster" or routing.is_addressable(store, parsed.local):
        return address
    return None


def recipients_for(store, settings, header: str, occurrence: int = 1):
    """The recipients_for callable fetch_account takes, for this header choice."""
    def mapping(message: bytes) -> Recipients:
        found, unknown = [], 0
        for address in envelope.recipients(message, header, occurrence):
            local = local_recipient(store, settings, address)
            if local is None:
                unknown += 1
            elif local not in found:
                found.append(local)
        if unknown or not found:
            fallback = unaddressable_recipient(settings)
            if fallback not in found:
                found.append(fallback)
            return Recipients(found, unaddressable=1)
        return Recipients(found)
    return mapping


def detected(store) -> tuple[str, int] | None:
    """What the last probe learnt: (header, occurrence), or None."""
    row = store.db.execute("SELECT header, occurrence FROM mail_envelope_detected WHERE id = 1").fetchone()
    return (row[0], row[1]) if row else None


def envelope_choice(ctx: RetrievalContext, cafile: str | None = None) -> tuple[str, int]:
    """(header, occurrence) in effect; with auto-detect, runs the probe
    first when nothing was learnt yet (raises DetectionError)."""
    choice = ctx.settings["email.envelope_header"]
    if choice != "auto":
        return choice, 1
    return detected(ctx.store) or detect_envelope_header(ctx, cafile=cafile)


def run(ctx: RetrievalContext, cafile: str | None = None) -> list[AccountResult]:
    """One Multi-drop session (nothing unless the server type is Multi-drop)."""
    settings = ctx.settings
    if settings["email.server_type"] != "multidrop":
        return []
    if not settings["email.isp_server"] or not settings["email.isp_login"]:
        return [AccountResult(ACCOUNT, False, detail="no ISP Mail Server or Login Name set "
                                                     "(Email Server > Settings)")]
    try:
        header, occurrence = envelope_choice(ctx, cafile)
    except DetectionError as error:
        return [AccountResult(ACCOUNT, False, detail=f"envelope header auto-detect: {error}; "
                                                     "nothing fetched")]
    mapping = recipients_for(ctx.store, settings, header, occurrence)
    return [fetch_account(ctx, account(settings), mapping, session_limit(settings), cafile)]


# ---- the auto-detect probe -------------------------------------------------------------
def probe_server(settings) -> tuple[str, int]:
    """Where the probe is sent: the Relay Server when set (it hands the
    probe to the ISP's MX), else the ISP Mail Server's host on port 25."""
    relay = settings["email.relay_server_address"]
    if relay:
        return split_host_port(relay, 25)
    return split_host_port(settings["email.isp_server"])[0], 25


def probe_message(settings, token: str, recipient: str) -> bytes:
    domain = settings["email.domain"]
    # The recipient appears in no header the box writes, so the only header
    # naming it is one the ISP added.
    lines = [f"From: postmaster@{domain}", "To: undisclosed-recipients:;",
             f"Subject: Envelope header probe {token}", f"{PROBE_HEADER}: {token}",
             f"Message-ID: <probe.{token}@{domain}>", f"Date: {email.utils.formatdate()}",
             "", f"This message finds which header your ISP writes for {recipient.split('@')[0]}.",
             "It is deleted when it is fetched.", ""]
    return "\r\n".join(lines).encode()


def send_probe(settings, token: str, recipient: str, server: tuple[str, int] | None = None):
    host, port = server or probe_server(settings)
    try:
        with smtplib.SMTP(host, port, timeout=60, local_hostname=settings["system.hostname"]) as smtp:
            smtp.ehlo()
            if settings["email.relay_server_auth"] and server is None and settings["email.relay_server_address"]:
                tls = smtp.has_extn("starttls")
                if tls:
                    smtp.starttls(context=tls_context())
                    smtp.ehlo()
                # As the delivery agent: never the password in clear text past the LAN.
                peer = smtp.sock.getpeername()[0]
                nearby = peer.startswith("127.") or peer == "::1" or addresses.in_networks(
                    peer, settings["email.trusted_networks"])
                if not tls and not nearby:
                    raise DetectionError(f"{host}:{port} offers no STARTTLS; the Relay Server "
                                         "password is not sent in clear text")
                smtp.login(settings["email.relay_server_login"], settings["email.relay_server_password"])
            smtp.sendmail(f"postmaster@{settings['email.domain']}", [recipient],
                          probe_message(settings, token, recipient))
    except (smtplib.SMTPException, OSError, ssl.SSLError) as error:
        raise DetectionError(f"cannot send the probe through {host}:{port}: {error}") from None


PROBE_MAX_OCTETS = 256 * 1024


def _find_probe(mailbox, token: str, looked: set):
    """The probe among the messages not looked at before (a poll every few
    seconds must not fetch the whole mailbox again), or None."""
    for listed in mailbox.list():
        if listed.uid in looked or listed.size > PROBE_MAX_OCTETS:
            continue
        looked.add(listed.uid)
        try:
            raw = mailbox.retrieve(listed.key, PROBE_MAX_OCTETS)
        except MessageRefused:
            continue
        if any(name == PROBE_HEADER.lower() and value.strip() == token
               for name, value in unfolded_headers(raw)):
            return listed, raw
    return None


def detect_envelope_header(ctx: RetrievalContext, server: tuple[str, int] | None = None,
                           timeout: float = PROBE_TIMEOUT, cafile: str | None = None,
                           clock=time.monotonic, pause=time.sleep) -> tuple[str, int]:
    """Sends a probe to a fresh address of the domain through the ISP
    (SERVER, else probe_server()), waits up to TIMEOUT for it in the ISP
    mailbox, learns which header (and which occurrence from the top) names
    that address, deletes the probe, stores and returns (header, occurrence)."""
    settings = ctx.settings
    token = secrets.token_hex(8)
    recipient = f"gatebox-probe-{token}@{settings['email.domain']}"
    send_probe(settings, token, recipient, server)
    mailbox_account = account(settings)
    deadline = clock() + timeout
    looked: set = set()
    while True:
        try:
            with open_mailbox(mailbox_account, cafile=cafile) as mailbox:
                found = _find_probe(mailbox, token, looked)
                if found is not None:
                    listed, raw = found
                    mailbox.delete(listed.key)
                    mailbox.commit()
                    break
        except MailboxError as error:
            # A login or certificate problem will not go away by waiting.
            raise DetectionError(f"cannot read the ISP mailbox: {error}") from None
        if clock() >= deadline:
            raise DetectionError(f"the probe to {recipient} did not arrive in the ISP mailbox "
                                 f"within {int(timeout)} seconds")
        pause(PROBE_POLL_SECONDS)
    where = envelope.locate(raw, recipient)
    if where is None:
        raise DetectionError("the probe arrived but no Delivered-To, X-Original-To, "
                             "X-Envelope-To, Envelope-To or Received header names its recipient; "
                             "this ISP cannot be used for Multi-drop")
    header, occurrence = where
    with transaction(ctx.store.db):
        ctx.store.db.execute("INSERT OR REPLACE INTO mail_envelope_detected(id, header, occurrence, "
                             "detected) VALUES(1, ?, ?, ?)", [header, occurrence, ctx.now])
    log.info("envelope header detected: %s, occurrence %d from the top", header, occurrence)
    return header, occurrence
