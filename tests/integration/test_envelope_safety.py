"""Envelope addresses with control characters are refused at MAIL and RCPT,
and the duplicate check never drops a split recipient list: a real box,
real SMTP clients, a recording LAN server behind it."""

import smtplib
import socket

import pytest

from tests.support.box import wait_until_idle
from tests.support.net import wait_until

UNTRUSTED = "127.0.0.2"

# What each address smuggles, as raw bytes on the command line.
BAD_PATHS = [
    b"<evil\rRCPT TO:<victim@relay.test>@internet.test>",   # bare CR
    b"<evil\x00@internet.test>",                             # NUL
    b'<"evil\rBcc: victim@relay.test"@internet.test>',       # CR in a quoted local part
    b'<"two words"@internet.test>',                          # space in a quoted local part
    b'<"tab\there"@internet.test>',
    b"<del\x7f@internet.test>",
    b"<(comment\x01)evil@internet.test>",                    # a comment aiosmtpd's parser drops
    b"<evil@internet.test\x1b[2J>",                          # a terminal escape in the domain
    b"<\xff\xfe@internet.test>",                             # not UTF-8
]


def _reply(sock_file) -> bytes:
    lines = []
    while True:
        line = sock_file.readline()
        if not line:
            raise AssertionError(f"connection closed after {lines!r}")
        lines.append(line)
        if line[3:4] != b"-":
            return b"".join(lines)


@pytest.fixture
def box(make_box, lan_server):
    return make_box(**{"email.mail_server_address": lan_server.address,
                       "email.trusted_networks": "127.0.0.1/32",
                       "email.check_duplicate_messages": "on"}).start()


@pytest.mark.parametrize("source", [UNTRUSTED, "127.0.0.1"], ids=["internet", "trusted"])
def test_control_characters_in_addresses_get_501_and_the_session_goes_on(box, lan_server, source):
    with socket.create_connection((box.host, box.smtp_port), timeout=10,
                                  source_address=(source, 0)) as sock:
        replies = sock.makefile("rb")
        assert _reply(replies).startswith(b"220 ")
        sock.sendall(b"EHLO client.test\r\n")
        assert _reply(replies).startswith(b"250")
        for path in BAD_PATHS:
            sock.sendall(b"MAIL FROM:" + path + b"\r\n")
            reply = _reply(replies)
            assert reply.startswith(b"501 5.1.7 "), (path, reply)
            assert b"\r" not in reply[:-2] and b"\x00" not in reply
        for path in BAD_PATHS:
            sock.sendall(b"MAIL FROM:<someone@internet.test>\r\n")
            assert _reply(replies).startswith(b"250 ")
            sock.sendall(b"RCPT TO:" + path + b"\r\n")
            reply = _reply(replies)
            assert reply.startswith(b"501 5.1.3 "), (path, reply)
            assert b"\r" not in reply[:-2] and b"\x00" not in reply
            sock.sendall(b"RSET\r\n")
            assert _reply(replies).startswith(b"250 ")
        # The same session still takes an honest message.
        sock.sendall(b"MAIL FROM:<someone@internet.test>\r\n")
        assert _reply(replies).startswith(b"250 ")
        sock.sendall(b"RCPT TO:<bob@example.com>\r\n")
        assert _reply(replies).startswith(b"250 ")
        sock.sendall(b"DATA\r\n")
        assert _reply(replies).startswith(b"354 ")
        sock.sendall(b"Message-ID: <honest@internet.test>\r\nSubject: honest\r\n\r\nfine\r\n.\r\n")
        assert _reply(replies).startswith(b"250 ")
        sock.sendall(b"QUIT\r\n")
    wait_until(lambda: len(lan_server.received) == 1, what="the honest message")
    wait_until_idle(box)
    [received] = lan_server.received
    assert received.sender == "someone@internet.test" and received.recipients == ["bob@example.com"]
    assert b"victim" not in received.content and b"Bcc:" not in received.content
    trace = received.content.split(b"\r\n\r\n", 1)[0]
    assert b"for <bob@example.com>" in trace
    assert all(b"\x00" not in line and b"\r" not in line for line in trace.split(b"\r\n"))
    assert "check=sender_characters" in box.log() and "check=recipient_characters" in box.log()
    assert "\r" not in box.log() and "\x00" not in box.log()


def _send(box, sender, recipients, message) -> tuple:
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:
        client.ehlo("mta.upstream.test")
        client.mail(sender)
        for recipient in recipients:
            assert client.rcpt(recipient)[0] == 250
        return client.data(message)


MESSAGE = b"Message-ID: <list-1@upstream.test>\r\nSubject: to the team\r\n\r\nsame body\r\n"


def test_split_recipient_list_reaches_everyone(box, lan_server):
    """An upstream MTA sends one message in two transactions, one per recipient
    group: same client, Message-ID and body, within the duplicate window."""
    first = _send(box, "news@upstream.test", ["bob@example.com", "carol@example.com"], MESSAGE)
    second = _send(box, "news@upstream.test", ["dave@example.com"], MESSAGE)
    third = _send(box, "other@upstream.test", ["bob@example.com", "carol@example.com"], MESSAGE)
    assert first[0] == second[0] == third[0] == 250
    assert len({first[1], second[1], third[1]}) == 3, "three queue ids: nothing was dropped"
    wait_until(lambda: len(lan_server.received) == 3, what="all three transactions")
    wait_until_idle(box)
    delivered = sorted(r for received in lan_server.received for r in received.recipients)
    assert delivered == ["bob@example.com", "bob@example.com", "carol@example.com",
                         "carol@example.com", "dave@example.com"]


def test_resend_of_the_same_envelope_is_kept_once(box, lan_server):
    first = _send(box, "news@upstream.test", ["bob@example.com", "carol@example.com"], MESSAGE)
    # The client timed out and sends it again, recipients in another order.
    again = _send(box, "news@upstream.test", ["carol@example.com", "bob@example.com"], MESSAGE)
    assert first == again and first[0] == 250
    wait_until(lambda: len(lan_server.received) == 1, what="the message")
    wait_until_idle(box)
    [received] = lan_server.received
    assert sorted(received.recipients) == ["bob@example.com", "carol@example.com"]
    assert "duplicate of" in box.log()
