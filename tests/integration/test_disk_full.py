"""Disk full, from outside: the box's queue on a 2 MB tmpfs (its settings
database on the normal disk), the LAN server down. The box answers
`452 4.3.1` rather than `250` once the queue cannot take a message (at MAIL
when the declared size does not fit, at DATA when the write fails), keeps no
partial file, keeps retrying what it holds while even its own state changes
cannot be written, and once the LAN server is back delivers every message
that got `250`, without a restart."""

import re
import smtplib

import pytest

from tests.support.box import Box, wait_until_idle
from tests.support.net import free_port, wait_until
from tests.support.sink import SmtpSink
from tests.support.tmpfs import fill, free_bytes, small_tmpfs

MESSAGE_LINES = 800          # about 64 KB a message
MAX_MESSAGES = 60            # far more than 2 MB holds
ID_PATTERN = re.compile(rb"<full-\d+@disk\.test>")


@pytest.fixture
def lan_sink(tmp_path):
    """Postfix's smtp-sink on a port nothing listens on yet: the LAN server is down."""
    server = SmtpSink(tmp_path / "lan", port=free_port())
    yield server
    server.stop()


@pytest.fixture
def box(tmp_path, lan_sink):
    box = Box(tmp_path / "box", settings={"email.mail_server_address": lan_sink.address,
                                          "email.max_connections_per_host": "unlimited"})
    with small_tmpfs(box.data / "queue", "2m"):
        try:
            yield box.start()
        finally:
            box.stop()


def message(number: int, lines: int = MESSAGE_LINES) -> str:
    return (f"Message-ID: <full-{number}@disk.test>\r\nSubject: full {number}\r\n\r\n"
            + "line of text to fill the queue with, seventy-odd characters long....\r\n" * lines)


def delivered_ids(sink) -> list[str]:
    return [m.decode() for body in sink.messages() for m in ID_PATTERN.findall(body)]


def test_a_full_queue_refuses_with_452_and_delivers_every_accepted_message(box, lan_sink):
    queue = box.data / "queue"
    acknowledged = []
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30) as client:
        # No SIZE declared: the write itself fails at DATA.
        client.ehlo("pc.office.lan")
        assert client.mail("staff@example.com")[0] == 250
        assert client.rcpt("bob@example.com")[0] == 250
        code, reply = client.data(message(0, lines=40000))      # about 2.8 MB
        assert (code, reply[:5]) == (452, b"4.3.1"), reply
        assert list((queue / "tmp").iterdir()) == []
        assert box.pending() == []

        # With SIZE (smtplib declares it): accepted until it no longer fits, then 452 at MAIL.
        refusal = None
        for number in range(1, MAX_MESSAGES):
            try:
                client.sendmail("staff@example.com", ["bob@example.com"], message(number))
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as refused:
                refusal = refused
                break
            acknowledged.append(f"<full-{number}@disk.test>")
    assert refusal is not None and refusal.smtp_code == 452, refusal
    assert b"4.3.1" in refusal.smtp_error
    assert len(acknowledged) >= 5
    assert list((queue / "tmp").iterdir()) == []

    # Take the last of the space: now not even the queue manager's deferrals
    # (a rewrite of the file) can be written.
    fill(queue / "ballast")
    wait_until(lambda: "cannot write the queue file" in box.log(), timeout=30,
               what="a deferral that failed for lack of space")

    # The LAN server is back, the disk still full: everything accepted goes out.
    lan_sink.start()
    wait_until(lambda: set(acknowledged) <= set(delivered_ids(lan_sink)), timeout=90,
               what=f"all {len(acknowledged)} accepted messages at the LAN server")
    wait_until_idle(box)
    delivered = delivered_ids(lan_sink)
    assert sorted(delivered) == sorted(acknowledged)    # each one, once
    assert box.pending() == []
    assert "queue manager exited" not in box.log()

    # Space is back: mail is taken again.
    (queue / "ballast").unlink()
    assert free_bytes(queue) > 1024 * 1024
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30) as client:
        client.sendmail("staff@example.com", ["bob@example.com"], message(MAX_MESSAGES))
    wait_until(lambda: f"<full-{MAX_MESSAGES}@disk.test>" in delivered_ids(lan_sink),
               timeout=30, what="the message sent after space returned")
