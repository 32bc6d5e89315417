"""The one way into the queue, as Postfix's cleanup is.

Every producer of mail hands a Submission here: smtpd, bounces (the queue
manager's and the administrator's delete-with-bounce), forwards and list
copies from local delivery, auto-replies, and later retrieval and quarantine
release. This module picks the queue id, completes the header block of mail
the box generates itself (Message-ID, Date and From when missing), takes the
summary the queue listing shows, writes the file durably (the Spool's
tmp, fsync, rename, fsync of the directory) and only then announces the new
id to the queue manager. Nothing else builds queue files."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from .addresses import is_clean
from .headers import safe_text, summary, unfolded_headers
from .queue import Envelope, FileSpan, Parts, Recipient, Spool, new_queue_id

# Mail that arrived from elsewhere is queued as it came; what the box writes
# itself gets the header fields RFC 5322 requires when they are missing.
RECEIVED_ORIGINS = ("smtpd", "retrieval", "release")
GENERATED_ORIGINS = ("bounce", "forward", "autoreply", "notice")
ORIGINS = RECEIVED_ORIGINS + GENERATED_ORIGINS


@dataclass
class Submission:
    sender: str
    recipients: list
    message: bytes
    origin: str
    direction: str = "outbound"   # inbound (from the Internet) | outbound
    client_address: str = "127.0.0.1"
    client_name: str = "localhost"
    helo: str = "localhost"
    auth_user: str = ""
    received: float | None = None
    # Whether the content needs 8BITMIME; None: judged from the stored bytes.
    body_8bit: bool | None = None
    # Why this mail exists, for the log ("forwarded for <a@b>").
    note: str = ""
    # Trace fields that name the queue id (smtpd's Received), placed on top.
    trace: Callable[[str], bytes] | None = field(default=None, repr=False)
    # Set: the message is queued in hold with this reason and not announced
    # (the quarantine store sets it to "KIND: reason" on its own spool).
    hold_reason: str = ""
    # Set: the queue id to use, for a producer that must record the id before
    # the file exists (retrieval, which stages in hold). Else one is picked.
    queue_id: str = ""
    # Set: the rest of the message, after `message`, in a file (smtpd's
    # scratch file of a large message); the queue file gets it by a kernel copy.
    tail: FileSpan | None = None

    def __post_init__(self):
        if self.origin not in ORIGINS:
            raise ValueError(f"unknown mail origin {self.origin!r}; one of {', '.join(ORIGINS)}")
        if not self.recipients:
            raise ValueError("a submission needs at least one recipient")
        # Envelope addresses go into the log, trace fields, DSNs and the
        # outbound MAIL/RCPT commands: one with a line break or a control
        # character is refused here, whoever produced it.
        for address in [self.sender, *self.recipients]:
            if not is_clean(address):
                raise ValueError(f"envelope address {safe_text(address, 100)!r} holds characters "
                                 "not allowed in an address")


def submit(spool: Spool, submission: Submission, announce: Callable[[str], None], settings) -> str:
    """Queue the submission (blocking) and return its queue id."""
    envelope, stored = prepare(submission, settings)
    try:
        spool.write(envelope, stored, "hold" if submission.hold_reason else "incoming")
    except OSError as error:
        _log_for(submission).error("%s: cannot write to the queue: %s", envelope.id, error)
        raise
    _queued(envelope, submission, announce)
    return envelope.id


async def submit_async(spool: Spool, submission: Submission, announce: Callable[[str], None],
                       settings) -> str:
    """The same from the event loop: the spool's committer shares one
    directory fsync among concurrent messages (group commit)."""
    envelope, stored = prepare(submission, settings)
    try:
        if submission.hold_reason:
            await asyncio.get_running_loop().run_in_executor(
                None, spool.write, envelope, stored, "hold")
        else:
            await spool.enqueue(envelope, stored)
    except OSError as error:
        _log_for(submission).error("%s: cannot write to the queue: %s", envelope.id, error)
        raise
    _queued(envelope, submission, announce)
    return envelope.id


def reserve_queue_id() -> str:
    """An id for Submission.queue_id, for a producer that must note the id
    before the file exists (retrieval's staging)."""
    return new_queue_id()


def prepare(submission: Submission, settings) -> tuple[Envelope, "Parts"]:
    """The envelope and the exact bytes to store (in parts, see
    queue.Parts), not yet written."""
    qid = submission.queue_id or new_queue_id()
    received = time.time() if submission.received is None else submission.received
    message = submission.message
    if submission.origin in GENERATED_ORIGINS:
        message = missing_headers(message, submission.sender, qid, received, settings) + message
    # The trace field is written in front of the message, not joined to it:
    # joining would copy a large message once more.
    trace = submission.trace(qid) if submission.trace is not None else b""
    info = summary(message)
    body_8bit = submission.body_8bit
    if body_8bit is None:
        body_8bit = not (message.isascii() and trace.isascii())
    envelope = Envelope(
        id=qid, sender=submission.sender,
        recipients=[Recipient(address) for address in submission.recipients],
        received=received, client_address=submission.client_address,
        client_name=submission.client_name,
        helo=submission.helo, auth_user=submission.auth_user, direction=submission.direction,
        size=len(trace) + len(message) + (submission.tail.length if submission.tail else 0),
        message_id=info.message_id, subject=info.subject,
        header_from=info.header_from, is_bounce=submission.origin == "bounce",
        body_8bit=body_8bit, last_error=submission.hold_reason)
    if submission.tail is not None:
        return envelope, (trace, message, submission.tail)
    return envelope, ((trace, message) if trace else message)


def missing_headers(message: bytes, sender: str, qid: str, when: float, settings) -> bytes:
    """Header lines to put in front of generated mail for the Message-ID,
    Date and From it lacks, in the message's own line ending."""
    present = {name for name, _ in unfolded_headers(message)}
    domain = message_id_domain(settings)
    lines = []
    if "message-id" not in present:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(when))
        lines.append(f"Message-ID: <{stamp}.{qid}@{domain}>")
    if "date" not in present:
        lines.append(f"Date: {email.utils.formatdate(when, localtime=True)}")
    if "from" not in present:
        lines.append(f"From: {sender or mailer_daemon(settings)}")
    newline = "\n" if _bare_newlines(message) else "\r\n"
    return "".join(line + newline for line in lines).encode("utf-8")


def mailer_daemon(settings) -> str:
    return f"MAILER-DAEMON@{settings['system.hostname']}"


def message_id_domain(settings) -> str:
    """The box's fully qualified name: the host name, completed with the
    mail domain when it is a bare label."""
    hostname = settings["system.hostname"]
    domain = settings["email.domain"]
    if "." in hostname or domain == "*":
        return hostname
    return f"{hostname}.{domain}"


def _bare_newlines(message: bytes) -> bool:
    end = message.find(b"\n")
    return end > 0 and message[end - 1:end] != b"\r"


def _log_for(submission: Submission) -> logging.Logger:
    # Logged under the producer's name, so smtpd's lines read as they always have.
    return logging.getLogger(f"gatebox.{submission.origin}")


def _queued(envelope: Envelope, submission: Submission, announce):
    log = _log_for(submission)
    if submission.origin == "smtpd":
        name = submission.client_name or "unknown"
        sasl = f", sasl_username={envelope.auth_user}" if envelope.auth_user else ""
        log.info("%s: client=%s[%s]%s, message-id=%s", envelope.id, name, envelope.client_address,
                 sasl, envelope.message_id or "<>")
    else:
        note = f" ({submission.note})" if submission.note else ""
        log.info("%s: origin=%s%s, message-id=%s", envelope.id, submission.origin, note,
                 envelope.message_id or "<>")
    if submission.hold_reason:
        log.info("%s: from=<%s>, size=%d, nrcpt=%d (queue hold: %s)", envelope.id,
                 envelope.sender, envelope.size, len(envelope.recipients), submission.hold_reason)
        return
    log.info("%s: from=<%s>, size=%d, nrcpt=%d (queue active)", envelope.id, envelope.sender,
             envelope.size, len(envelope.recipients))
    announce(envelope.id)
