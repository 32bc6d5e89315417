"""The EICAR test: the harmless standard test virus sent through the box's
own SMTP port the way an outside client sends mail, so the test passes
through everything real mail passes through (the policy chain, the scanner,
the action, the notices), and what happened read back from the reply, the
quarantine and the queue.

The EICAR string is put together at run time from two halves, so that no
file of the firmware is itself flagged by a scanner."""

from __future__ import annotations

import email.utils
import re
import smtplib
import socket
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from firmware.mail.queue import NotInQueue, QueueError, Spool
from firmware.mail.quarantine import Quarantine
from firmware.system import service_state

_FIRST_HALF = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-"
_SECOND_HALF = "STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
ATTACHMENT_NAME = "eicar.com"
DEFAULT_SMTP_PORT = 25
TIMEOUT_SECONDS = 90       # the scan of one message may take the scanner's whole budget
QUEUED_AS = re.compile(r"queued as ([0-9A-Za-z]+)")
# The states where a notice waits for delivery (or for the administrator).
QUEUE_STATES = ("incoming", "active", "deferred", "hold")

REJECTED, DEFERRED, QUARANTINED, DELIVERED, REFUSED, UNREACHABLE = (
    "rejected", "deferred", "quarantined", "delivered", "refused", "unreachable")


def eicar_bytes() -> bytes:
    return (_FIRST_HALF + _SECOND_HALF).encode("ascii")


@dataclass(frozen=True)
class Notice:
    """A message the box wrote while handling the test (null sender, queued
    after the test began): a virus notice."""
    queue_id: str
    recipients: tuple
    subject: str
    state: str


@dataclass
class Outcome:
    host: str
    port: int
    stage: str            # the SMTP command the last reply answered: connect, MAIL, RCPT, DATA
    code: int
    reply: str
    where: str            # REJECTED | DEFERRED | QUARANTINED | DELIVERED | REFUSED | UNREACHABLE
    queue_id: str = ""    # the quarantine id when quarantined, the queue id when delivered
    quarantine_reason: str = ""
    notices: list = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        """Whether the test virus was kept from its recipient."""
        return self.where in (REJECTED, QUARANTINED)


def smtp_address(data_dir) -> tuple[str, int]:
    """Where `gatebox run` accepts mail, as its mail service recorded it; the
    wildcard addresses are reached on loopback."""
    listening = service_state.read(data_dir, service_state.MAIL).get("listening") or {}
    bind = str(listening.get("bind") or "")
    port = listening.get("smtp")
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind, bind)
    return host, int(port) if isinstance(port, int) and port > 0 else DEFAULT_SMTP_PORT


def test_message(sender: str, recipient: str, hostname: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = "EICAR anti-virus test"
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid("eicar-test", domain=hostname)
    message.set_content("The attachment is the EICAR anti-virus test file. It is harmless: it "
                        "exists so that scanners can be tested. The box's scanner should have "
                        "stopped this message.\n")
    message.add_attachment(eicar_bytes(), maintype="application", subtype="octet-stream",
                           filename=ATTACHMENT_NAME)
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def _reply(stage: str, code: int, text: bytes | str) -> tuple[str, int, str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return stage, code, " ".join(text.split())


def _converse(host: str, port: int, sender: str, recipient: str, message: bytes,
              timeout: float) -> tuple[str, int, str]:
    """(stage, code, text) of the reply that decided the message."""
    client = smtplib.SMTP(timeout=timeout)
    try:
        code, text = client.connect(host, port)
        if code != 220:
            return _reply("connect", code, text)
        code, text = client.ehlo("eicar-test.localhost")
        if code != 250:
            return _reply("EHLO", code, text)
        code, text = client.mail(sender)
        if code != 250:
            return _reply("MAIL", code, text)
        code, text = client.rcpt(recipient)
        if code not in (250, 251):
            return _reply("RCPT", code, text)
        try:
            code, text = client.data(message)
        except smtplib.SMTPDataError as refused:   # the DATA command itself refused
            return _reply("DATA", refused.smtp_code, refused.smtp_error)
        return _reply("DATA", code, text)
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()   # a box that refused the message may have hung up already


def _queue_id_floor(moment: float) -> str:
    """Queue ids start with the time in microseconds, in hex: every id
    issued from `moment` on sorts at or above this."""
    return f"{int(moment * 1_000_000):013X}"


def notices_since(spool: Spool, moment: float, exclude: str = "") -> list[Notice]:
    """The null-sender messages queued from `moment` on: what the box wrote
    itself meanwhile. One already delivered is no longer in the queue."""
    floor = _queue_id_floor(moment)
    found = []
    for state in QUEUE_STATES:
        for qid in spool.ids(state):
            if qid < floor or qid == exclude:
                continue
            try:
                envelope = spool.read_envelope(state, qid)
            except (NotInQueue, QueueError):
                continue
            if envelope.sender == "":
                found.append(Notice(qid, tuple(r.address for r in envelope.recipients),
                                    envelope.subject, state))
    return sorted(found, key=lambda notice: notice.queue_id)


def _where(data_dir: Path, stage: str, code: int, text: str) -> tuple[str, str, str]:
    """(where, id, quarantine reason) for the deciding reply."""
    if stage == "DATA" and code == 250:
        match = QUEUED_AS.search(text)
        qid = match.group(1) if match else ""
        if qid:
            try:
                item, _ = Quarantine(data_dir).load(qid)
            except (NotInQueue, QueueError, OSError):
                pass
            else:
                return QUARANTINED, qid, item.reason
        return DELIVERED, qid, ""
    if stage == "DATA" and 500 <= code < 600:
        return REJECTED, "", ""
    if 400 <= code < 500:
        return DEFERRED, "", ""
    return REFUSED, "", ""


def run(data_dir, sender: str, recipient: str, hostname: str,
        address: tuple[str, int] | None = None, timeout: float = TIMEOUT_SECONDS) -> Outcome:
    """Send the test file and say what became of it."""
    data_dir = Path(data_dir)
    host, port = address or smtp_address(data_dir)
    began = time.time()
    message = test_message(sender, recipient, hostname)
    try:
        stage, code, text = _converse(host, port, sender, recipient, message, timeout)
    except (smtplib.SMTPException, OSError, socket.timeout) as error:
        return Outcome(host, port, "connect", 0, f"{error.__class__.__name__}: {error}",
                       UNREACHABLE)
    where, qid, reason = _where(data_dir, stage, code, text)
    notices = notices_since(Spool(data_dir / "queue"), began, exclude=qid)
    return Outcome(host, port, stage, code, text, where, qid, reason, notices)

