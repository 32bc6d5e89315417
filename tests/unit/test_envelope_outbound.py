"""Past smtpd, an address with a control character is still kept out of the
queue, the DSN headers and the outbound MAIL/RCPT commands."""

import asyncio
import email
import re
import socket
import threading

import pytest

from firmware.mail import bounce
from firmware.mail.deliver.smtp import SmtpDelivery
from firmware.mail.queue import Envelope, Recipient
from firmware.mail.route import Destination
from firmware.mail.submit import Submission
from tests.support.sink import RecordingServer

INJECTED = "victim@relay.test\r\nBcc: third@party.test"


@pytest.mark.parametrize("sender, recipients", [
    (INJECTED, ["bob@example.com"]),
    ("alice@example.com", ["bob@example.com", "x\x00y@example.com"]),
    ("alice@example.com", ['"two words"@example.com']),
])
def test_submit_refuses_unclean_envelope_addresses(sender, recipients):
    with pytest.raises(ValueError, match="not allowed in an address"):
        Submission(sender, recipients, b"Subject: x\r\n\r\nx\r\n", "smtpd")


@pytest.fixture
def settings(delivery_settings):
    return delivery_settings


def _headers(dsn: bytes) -> list[list[str]]:
    """Every header block of the DSN, its parts' included, as lines."""
    message = email.message_from_bytes(dsn)
    blocks = [[f"{k}: {v}" for k, v in message.items()]]
    for part in message.walk():
        blocks.append([f"{k}: {v}" for k, v in part.items()])
    status = [p for p in message.walk() if p.get_content_type() == "message/delivery-status"]
    assert status
    return blocks


def test_dsn_carries_no_injected_header(settings):
    envelope = Envelope(id="Q1", sender=INJECTED, recipients=[], received=0.0)
    failed = [Recipient("bob\r\nX-Injected: 1@example.com", "failed",
                        "550 5.1.1 no such user\r\nX-Injected: 2")]
    dsn = bounce.build(envelope, failed, b"Subject: original\r\n\r\nbody\r\n", settings)
    assert b"\r\nBcc:" not in dsn and b"\r\nX-Injected" not in dsn and b"\nX-Injected" not in dsn
    lines = dsn.split(b"\r\n")
    assert not any(line.startswith((b"Bcc:", b"X-Injected")) for line in lines)
    for block in _headers(dsn):
        assert not any(line.startswith(("Bcc:", "X-Injected")) for line in block)
        # Folding leaves CRLF + white space inside a value; anything else is a break.
        assert not any(re.search(r"\r(?!\n[ \t])|(?<!\r)\n|\x00", line) for line in block)
    submission = bounce.bounce_submission(envelope, failed, b"Subject: o\r\n\r\nb\r\n", settings)
    assert submission.recipients == [bounce.admin_address(settings)]


class RawRecorder:
    """A loopback SMTP server that keeps the command lines exactly as sent."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lines: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        connection, _ = self.sock.accept()
        with connection, connection.makefile("rb") as reader:
            connection.sendall(b"220 raw ESMTP\r\n")
            in_data = False
            for line in reader:
                if in_data:
                    if line == b".\r\n":
                        in_data = False
                        connection.sendall(b"250 2.0.0 Ok\r\n")
                    continue
                self.lines.append(line.rstrip(b"\r\n"))
                verb = line[:4].upper()
                if verb == b"EHLO":
                    connection.sendall(b"250-raw\r\n250 SIZE 1000000\r\n")
                elif verb == b"DATA":
                    in_data = True
                    connection.sendall(b"354 go\r\n")
                elif verb == b"QUIT":
                    connection.sendall(b"221 bye\r\n")
                    return
                else:
                    connection.sendall(b"250 2.1.0 Ok\r\n")

    def close(self):
        self.sock.close()


def test_outbound_paths_go_out_as_accepted_and_unclean_ones_not_at_all(settings):
    server = RawRecorder()
    delivery = SmtpDelivery(helo_name="gatebox.test")

    async def deliver():
        # Parsed as a header, 'a,b@example.com' would go out as <a>.
        results = await delivery.deliver(
            Destination("lan", "127.0.0.1", server.port), "alice@example.com",
            ["a,b@example.com", "carol\x00@example.com"], b"Subject: x\r\n\r\nx\r\n", settings)
        await delivery.close_idle()
        return results
    try:
        results = asyncio.run(deliver())
    finally:
        server.close()
    assert results["a,b@example.com"].status == "sent"
    assert results["carol\x00@example.com"].status == "perm"
    assert "\x00" not in results["carol\x00@example.com"].detail
    commands = [line for line in server.lines if line[:4] in (b"MAIL", b"RCPT")]
    assert commands == [b"MAIL FROM:<alice@example.com> SIZE=17", b"RCPT TO:<a,b@example.com>"]


def test_unclean_sender_sends_nothing(settings):
    delivery = SmtpDelivery(helo_name="gatebox.test")
    server = RecordingServer().start()
    try:
        results = asyncio.run(delivery.deliver(
            Destination("lan", server.host, server.port), "a\rb@example.com", ["bob@example.com"],
            b"Subject: x\r\n\r\nx\r\n", settings))
    finally:
        server.stop()
    assert results["bob@example.com"].status == "perm"
    assert "5.1.7" in results["bob@example.com"].detail
    assert server.received == []
