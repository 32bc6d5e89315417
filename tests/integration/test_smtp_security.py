"""No open relay, no smuggling, no STARTTLS injection: the attacks a
gateway on the Internet meets, made by a client at an untrusted address."""

import smtplib
import socket
import ssl
import time

import pytest

from tests.support.box import wait_until_idle
from tests.support.net import wait_until

UNTRUSTED = "127.0.0.2"

# The address forms nmap's smtp-open-relay script tries, with the box as
# "host" (its domain and its address literal) and relay.test as the victim.
RELAY_FORMS = [
    "relaytest@relay.test",
    "relaytest%relay.test@example.com",
    "relaytest%relay.test@[127.0.0.1]",
    '"relaytest@relay.test"',
    '"relaytest%relay.test"',
    "relaytest@relay.test@[127.0.0.1]",
    '"relaytest@relay.test"@[127.0.0.1]',
    '"relaytest@relay.test"@example.com',
    "relaytest@relay.test@example.com",
    "@[127.0.0.1]:relaytest@relay.test",
    "@example.com:relaytest@relay.test",
    "relay.test!relaytest",
    "relay.test!relaytest@[127.0.0.1]",
    "relay.test!relaytest@example.com",
    "relaytest@[127.0.0.1]",
]
SENDERS = ["", "antispam@example.com", "antispam@[127.0.0.1]", "antispam@relay.test"]


@pytest.fixture
def box(make_box, sink):
    return make_box(**{"email.mail_server_address": sink.address,
                       "email.trusted_networks": "127.0.0.1/32"}).start()


def test_every_open_relay_address_form_is_refused(box, sink):
    accepted = []
    # A session per sender: a session ends after 20 refused recipients
    # (recipient_refusal_limit), and each sender tries fewer forms than that.
    assert len(RELAY_FORMS) < 20
    for sender in SENDERS:
        with smtplib.SMTP(box.host, box.smtp_port, timeout=10, source_address=(UNTRUSTED, 0),
                          local_hostname="client.test") as client:
            assert client.ehlo("nmap.scanme.test")[0] == 250
            for recipient in RELAY_FORMS:
                assert client.docmd(f"MAIL FROM:<{sender}>")[0] == 250
                code, reply = client.docmd(f"RCPT TO:<{recipient}>")
                if code < 400:
                    accepted.append((sender, recipient, code, reply))
                assert code >= 500, (recipient, code, reply)
                client.rset()
    assert accepted == []
    # A legitimate inbound message from the same client still works.
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10, source_address=(UNTRUSTED, 0),
                      local_hostname="client.test") as client:
        client.sendmail("someone@internet.test", ["bob@example.com"], "Subject: ok\r\n\r\nfine\r\n")
    wait_until(lambda: sink.count() == 1, what="the legitimate message")
    wait_until_idle(box)
    assert sink.final_count() == 1


def _dialogue(box, chunks, source=UNTRUSTED, read_timeout=5.0) -> bytes:
    """Send raw bytes and collect everything the server answers."""
    with socket.create_connection((box.host, box.smtp_port), timeout=read_timeout,
                                  source_address=(source, 0)) as sock:
        received = sock.recv(4096)
        for chunk in chunks:
            sock.sendall(chunk)
            time.sleep(0.3)
            try:
                received += sock.recv(65536)
            except socket.timeout:
                pass
        sock.sendall(b"QUIT\r\n")
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
        except (socket.timeout, ConnectionResetError):
            pass
    return received


@pytest.mark.parametrize("ending", [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"])
def test_bare_lf_smuggling_yields_one_message_never_two(box, sink, ending):
    smuggled = (b"Subject: outer\r\n\r\nhello" + ending +
                b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
                b"Subject: smuggled\r\n\r\nsend money\r\n.\r\n")
    transcript = _dialogue(box, [
        b"EHLO attacker.test\r\n",
        b"MAIL FROM:<attacker@internet.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n",
        smuggled,
        # then an honest message in the same session
        b"MAIL FROM:<attacker@internet.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n",
        b"Subject: honest\r\n\r\njust text\r\n.\r\n",
    ])
    assert b"550 5.5.2" in transcript, transcript
    wait_until(lambda: sink.count() >= 1, what="the honest message")
    wait_until_idle(box)
    assert sink.final_count() == 1
    messages = sink.messages()
    assert len(messages) == 1, messages
    assert b"Subject: honest" in messages[0]
    assert not any(b"smuggled" in m or b"victim@example.com" in m for m in messages)


def test_commands_pipelined_behind_starttls_are_refused(box, sink):
    transcript = _dialogue(box, [
        b"EHLO attacker.test\r\n",
        b"STARTTLS\r\nMAIL FROM:<attacker@internet.test>\r\nRCPT TO:<bob@example.com>\r\n",
    ])
    assert b"554 5.5.1" in transcript
    assert b"220 Ready to start TLS" not in transcript
    assert b"2.1.0" not in transcript.split(b"STARTTLS")[-1]


def test_starttls_alone_still_works(box, sink):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10, source_address=(UNTRUSTED, 0),
                      local_hostname="client.test") as client:
        client.ehlo("client.test")
        assert client.starttls(context=context)[0] == 220
        client.ehlo("client.test")
        client.sendmail("someone@internet.test", ["bob@example.com"], "Subject: tls\r\n\r\nx\r\n")
    wait_until(lambda: sink.count() == 1, what="the TLS message")
    assert b"with ESMTPS id" in sink.messages()[0]


def test_client_timeout_resend_is_kept_once(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address,
                      "email.check_duplicate_messages": "on"}).start()
    message = "Message-ID: <resend-1@outlook.test>\r\nSubject: resent\r\n\r\nsame body\r\n"
    replies = []
    for _ in range(2):
        with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:
            client.ehlo("pc.office.lan")
            client.mail("staff@example.com")
            client.rcpt("bob@example.com")
            replies.append(client.data(message.encode()))
    assert replies[0][0] == replies[1][0] == 250
    assert replies[0][1] == replies[1][1], "the resend is told the same queue id"
    # A different message with a different Message-ID is not a duplicate.
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:
        client.sendmail("staff@example.com", ["bob@example.com"],
                        message.replace("resend-1", "resend-2"))
    wait_until(lambda: sink.count() == 2, what="two distinct messages")
    wait_until_idle(box)
    assert sink.final_count() == 2


def test_duplicates_are_delivered_twice_when_the_check_is_off(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address}).start()
    message = "Message-ID: <resend-1@outlook.test>\r\nSubject: resent\r\n\r\nsame body\r\n"
    for _ in range(2):
        with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:
            client.sendmail("staff@example.com", ["bob@example.com"], message)
    wait_until(lambda: sink.count() == 2, what="both copies")


def test_a_session_guessing_recipients_is_closed_after_20_refusals(box):
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10, source_address=(UNTRUSTED, 0),
                      local_hostname="client.test") as client:
        client.ehlo("guesser.test")
        assert client.docmd("MAIL FROM:<a@outside.test>")[0] == 250
        codes = [client.docmd(f"RCPT TO:<guess{n}@relay.test>")[0] for n in range(20)]
        assert codes == [554] * 20
        code, reply = client.docmd("RCPT TO:<guess20@relay.test>")
        assert (code, reply[:5]) == (421, b"4.7.0"), reply
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.docmd("NOOP")
    # A trusted client is not counted.
    with smtplib.SMTP(box.host, box.smtp_port, timeout=10, local_hostname="lan.test") as client:
        client.ehlo("lan.test")
        assert client.docmd("MAIL FROM:<a@example.com>")[0] == 250
        # A space is refused to everyone (recipient_characters).
        codes = {client.docmd(f'RCPT TO:<"bad guess{n}"@example.com>')[0] for n in range(25)}
        assert codes == {501}
