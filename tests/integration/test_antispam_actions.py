"""The Filter Match Action end to end through the running box: a real SMTP
client outside Trusted Networks sends a message holding the GTUBE test
string (which the Heuristic filter scores 1000) to a relay box with the
Anti-Spam SoftPak licensed, the box relays to a real LAN server
(smtp-sink), a real DNS server (dnsmasq) answers the content layers'
lookups, and the Content Filter is set with the real `gatebox antispam
filter` command.

- mark: delivered with [SPAM] and X-Spam-Flag, X-Spam-Score, X-Spam-Report;
  with Append [SPAM] off, the subject is kept and the fields are still there;
- quarantine: held in Email Server > Quarantine with its subject, never in
  the queue, never delivered;
- reject: 550 5.7.1 at the end of DATA, nothing queued, no bounce;
- user over domain over server, and recipients of different records split
  with 452 4.5.3 into transactions of their own."""

from __future__ import annotations

import email
import email.policy
import email.utils
import smtplib

import pytest

from firmware.mail.quarantine import Quarantine
from tests.support.box import wait_reloaded, wait_until_idle
from tests.support.dnsmasq import DnsServer
from tests.support.net import wait_until
from tests.support.sink import SmtpSink

CLIENT = "127.0.0.5"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SENDER = "someone@outside.test"


@pytest.fixture
def dns(tmp_path):
    server = DnsServer(tmp_path / "dns", [
        "--local=/outside.test/", "--local=/example.com/",
        f"--host-record=mail.outside.test,{CLIENT}",
    ], probe="mail.outside.test").start()
    yield server
    server.stop()


@pytest.fixture
def lan(tmp_path):
    sink = SmtpSink(tmp_path / "lan").start()
    yield sink
    sink.stop()


@pytest.fixture
def box(make_box, lan, dns, vendor, box_serial):
    """A relay box for example.com, Anti-Spam licensed, the Content Filter on
    with the Heuristic filter only (it holds GTUBE)."""
    made = make_box(**{"email.server_type": "relay", "email.mail_server_address": lan.address,
                       "email.trusted_networks": "127.0.0.1/32", **dns.settings})
    made.cli("license", "activate", vendor.issue(antispam=None))
    made.cli("antispam", "filter", "set", "content_filter=on", "default_filter=off",
             "custom_filter=off", "heuristic=on")
    return made


def message(subject: str, body: str, number: int = 1) -> bytes:
    # Dated now: a fixed date scores DATE_IN_PAST_* once it is days old.
    return (f"From: Someone <{SENDER}>\r\nTo: Bob <bob@example.com>\r\n"
            f"Subject: {subject}\r\nDate: {email.utils.formatdate(usegmt=True)}\r\n"
            f"Message-ID: <action-{number}@outside.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"{body}\r\n").encode()


def spam(number: int = 1) -> bytes:
    return message("Test of the spam filter", f"This is the GTUBE test.\r\n\r\n{GTUBE}", number)


def send(box, data: bytes, recipients=("bob@example.com",)):
    """(replies to each RCPT, reply to the end of DATA or None)."""
    client = smtplib.SMTP(timeout=30, source_address=(CLIENT, 0))
    try:
        client.connect(box.host, box.smtp_port)
        client.ehlo("mail.outside.test")
        assert client.docmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        replies = [client.docmd(f"RCPT TO:<{r}>") for r in recipients]
        if not any(code == 250 for code, _ in replies):
            return replies, None
        code, _ = client.docmd("DATA")
        assert code == 354
        client.send(data.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        done = client.getreply()
        client.docmd("QUIT")
        return replies, done
    finally:
        client.close()


def delivered(lan, count: int) -> list[email.message.Message]:
    wait_until(lambda: lan.count() >= count, 30, 0.2, f"{count} message(s) at the LAN server")
    return [email.message_from_bytes(m, policy=email.policy.default) for m in lan.messages()]


def test_mark_tags_the_subject_and_adds_the_spam_fields(box, lan):
    box.start()
    replies, done = send(box, spam())
    assert done[0] == 250
    [got] = delivered(lan, 1)
    assert got["Subject"] == "[SPAM] Test of the spam filter"
    assert got["X-Spam-Flag"] == "YES"
    assert float(got["X-Spam-Score"]) >= 1000
    assert "GTUBE" in got["X-Spam-Report"]
    assert "required=5.0" in got["X-Spam-Status"]        # Medium's lower threshold
    # Clean mail passes unmarked.
    send(box, message("Lunch", "See you at noon.", 2))
    wait_until_idle(box)
    clean = [m for m in delivered(lan, 2) if "Lunch" in m["Subject"]]
    assert clean and clean[0]["Subject"] == "Lunch" and clean[0]["X-Spam-Flag"] is None


def test_mark_without_tag_subject_keeps_the_subject(box, lan):
    box.cli("antispam", "filter", "set", "tag_subject=off")
    box.start()
    assert send(box, spam())[1][0] == 250
    [got] = delivered(lan, 1)
    assert got["Subject"] == "Test of the spam filter"
    assert got["X-Spam-Flag"] == "YES" and "GTUBE" in got["X-Spam-Report"]


def test_quarantine_holds_the_message_outside_the_queue(box, lan):
    box.cli("antispam", "filter", "set", "action=quarantine")
    box.start()
    replies, done = send(box, spam())
    assert done[0] == 250
    wait_until_idle(box)
    [item] = Quarantine(box.data).items("spam")
    assert [r.address for r in item.envelope.recipients] == ["bob@example.com"]
    assert "spam score 1000.0 >= 10.0" in item.reason
    _, held = Quarantine(box.data).load(item.id)
    parsed = email.message_from_bytes(held, policy=email.policy.default)
    assert parsed["Subject"] == "Test of the spam filter"      # a release delivers it as it came
    assert parsed["X-Spam-Flag"] == "YES"
    assert box.pending() == [] and lan.final_count() == 0
    listed = box.cli("quarantine", "list", "--kind", "spam").stdout
    assert item.id in listed and "bob@example.com" in listed


def test_reject_refuses_at_data_and_sends_no_bounce(box, lan):
    box.cli("antispam", "filter", "set", "action=reject")
    box.start()
    replies, done = send(box, spam())
    assert replies[0][0] == 250
    code, text = done
    assert code == 550 and text.decode().startswith("5.7.1 Message refused as spam")
    assert "check=spam_score" in box.log()
    wait_until_idle(box)
    assert box.pending() == [] and box.queue_ids("hold") == []
    assert Quarantine(box.data).items() == []
    # No bounce: nothing was queued, so nothing can come back to the sender or go anywhere.
    assert lan.final_count() == 0
    assert not any((box.data / "queue" / state).exists() and
                   any((box.data / "queue" / state).iterdir())
                   for state in ("incoming", "active", "deferred", "hold"))
    # Clean mail is still accepted and delivered.
    assert send(box, message("Lunch", "See you at noon.", 2))[1][0] == 250
    assert [m["Subject"] for m in delivered(lan, 1)] == ["Lunch"]


def test_a_user_record_overrides_the_domain_and_the_server(box, lan):
    box.cli("antispam", "filter", "set", "action=reject")
    box.cli("antispam", "filter", "set", "--domain", "example.com", "action=quarantine")
    box.cli("antispam", "filter", "set", "--user", "bob", "action=mark")
    box.start()
    # bob: his own record marks.
    assert send(box, spam(1))[1][0] == 250
    [got] = delivered(lan, 1)
    assert got["Subject"].startswith("[SPAM] ")
    # carol: the domain's record quarantines.
    assert send(box, spam(2), ["carol@example.com"])[1][0] == 250
    wait_until(lambda: len(Quarantine(box.data).items("spam")) == 1, 20, 0.2,
               "carol's message in the quarantine")
    # Clearing bob's record while the box runs: the domain's applies to him on the next message.
    box.cli("antispam", "filter", "clear", "--user", "bob")
    wait_reloaded(box)
    assert send(box, spam(3))[1][0] == 250
    wait_until(lambda: len(Quarantine(box.data).items("spam")) == 2, 20, 0.2,
               "bob's next message quarantined")
    wait_until_idle(box)
    assert lan.final_count() == 1


def test_recipients_of_different_records_are_split(box, lan):
    box.cli("antispam", "filter", "set", "--user", "carol", "action=reject")
    box.start()
    replies, done = send(box, spam(), ["bob@example.com", "carol@example.com",
                                       "dave@example.com"])
    assert [code for code, _ in replies] == [250, 452, 250]
    assert replies[1][1].decode() == ("4.5.3 recipients with different spam filter settings: "
                                      "send this one in another transaction")
    assert done[0] == 250
    # The client's second transaction for carol is filtered by her record alone.
    replies, done = send(box, spam(2), ["carol@example.com"])
    assert replies[0][0] == 250 and done[0] == 550
    wait_until_idle(box)
    [got] = delivered(lan, 1)
    assert got["Subject"].startswith("[SPAM] ")
