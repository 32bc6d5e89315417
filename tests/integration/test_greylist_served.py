"""The greylist once end to end: a box with the Anti-Spam SoftPak licensed,
run with `gatebox run`, a real SMTP client (smtplib) from 127.0.0.2, outside
Trusted Networks, and the LAN server a recording SMTP server.

The shortest Initial Block Period the settings allow is one minute. Rather
than wait that minute, or give the box a test-only way to shorten it, the
test is the clock: after the first deferral it writes the triplet's
first_seen one hour back in the box's own database (sqlite3, as any other
reader of it would), exactly what the passing of time would have left there.
The retry then passes the real check in the running smtpd, which reads the
triplet afresh on every RCPT. The in-process tests (tests/unit/test_greylist.py)
drive every period through the injectable clock."""

from __future__ import annotations

import smtplib
import sqlite3

import pytest
from click.testing import CliRunner

from firmware.cli.root import Context as CliContext
from softpaks.antispam.greylist_cli import greylist_group
from tests.support.box import wait_until_idle
from tests.support.net import wait_until

CLIENT = "127.0.0.2"
SENDER, RECIPIENT = "prvs=0123456789=Alice@Outside.test", "jane@example.com"
MESSAGE = (b"From: Alice <alice@outside.test>\r\nTo: jane@example.com\r\n"
           b"Subject: greylisted hello\r\nMessage-ID: <grey-1@outside.test>\r\n\r\nhello\r\n")


@pytest.fixture
def box(make_box, lan_server, vendor, box_serial):
    made = make_box(**{"email.server_type": "relay",
                       "email.mail_server_address": lan_server.address,
                       "email.trusted_networks": "127.0.0.1/32"})
    made.cli("license", "activate", vendor.issue(antispam=None))
    made.configure(**{"antispam.greylist": "on", "antispam.greylist_initial_min": "1"})
    return made.start()


def send(box, sender=SENDER, recipient=RECIPIENT):
    """(RCPT reply, DATA reply or None)."""
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30, source_address=(CLIENT, 0),
                      local_hostname="mx.outside.test") as client:
        client.ehlo("mx.outside.test")
        assert client.docmd(f"MAIL FROM:<{sender}>")[0] == 250
        code, text = client.docmd(f"RCPT TO:<{recipient}>")
        rcpt = (code, text.decode())
        if code != 250:
            return rcpt, None
        return rcpt, client.data(MESSAGE)


def database(box):
    return sqlite3.connect(box.data / "gatebox.db")


def triplets(box) -> list[tuple]:
    with database(box) as db:
        return db.execute("SELECT network, sender, recipient, passed IS NOT NULL "
                          "FROM greylist_triplets").fetchall()


def counted(box, name: str) -> int:
    with database(box) as db:
        row = db.execute("SELECT SUM(count) FROM check_stats WHERE name = ?", [name]).fetchone()
    return row[0] or 0


def cli(box, *args):
    result = CliRunner().invoke(greylist_group, list(args), obj=CliContext(str(box.data)))
    assert result.exit_code == 0, result.output
    return result.output


def test_first_attempt_is_deferred_and_the_retry_after_the_period_is_delivered(box, lan_server):
    rcpt, _ = send(box)
    assert rcpt == (451, "4.7.1 Greylisted, try again later")
    assert triplets(box) == [("127.0.0.0/24", "alice@outside.test", "jane@example.com", 0)]
    assert "greylist: deferred client=[127.0.0.2] network=127.0.0.0/24" in box.log()
    shown = cli(box, "show")
    assert "pending: 1  passed: 0" in shown
    assert "pending 127.0.0.0/24 <alice@outside.test> -> <jane@example.com>  age 0m" in shown

    # A retry within the period (the test took well under a minute) stays deferred.
    assert send(box)[0][0] == 451

    # The clock: an hour passes for this triplet.
    with database(box) as db:
        db.execute("UPDATE greylist_triplets SET first_seen = first_seen - 3600")
    rcpt, data = send(box, sender="prvs=9876543210=alice@outside.test")
    assert rcpt[0] == 250, rcpt
    assert data[0] == 250, data
    wait_until(lambda: lan_server.received, 20, 0.2, "the message at the LAN server")
    [received] = lan_server.received
    assert received.message["Subject"] == "greylisted hello"
    assert triplets(box) == [("127.0.0.0/24", "alice@outside.test", "jane@example.com", 1)]
    wait_until(lambda: counted(box, "greylist=deferred") == 2 and
               counted(box, "greylist=passed") == 1, 20, what="the greylist's counters")
    assert "pending: 0  passed: 1" in cli(box, "show")
    wait_until_idle(box)


def test_pass_now_from_the_cli_lets_the_next_attempt_through(box, lan_server):
    assert send(box, sender="bob@outside.test")[0][0] == 451
    assert "passed 127.0.0.0/24 <bob@outside.test> -> <jane@example.com>" in \
        cli(box, "pass", "127.0.0.2", "bob@outside.test", "jane@example.com")
    rcpt, data = send(box, sender="bob@outside.test")
    assert rcpt[0] == 250 and data[0] == 250, (rcpt, data)
    # Trusted Networks are never greylisted.
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30, source_address=("127.0.0.1", 0)) as c:
        c.ehlo("lan.example.com")
        assert c.docmd("MAIL FROM:<carol@example.com>")[0] == 250
        assert c.docmd("RCPT TO:<jane@example.com>")[0] == 250
    wait_until_idle(box)
