"""The content rules through real SMTP: smtplib from a loopback address
outside Trusted Networks to the in-process smtpd (tests.support.gateway),
whose chain holds the Content Filter's checks and the rules check, as the
Anti-Spam SoftPak puts them there; then once through a running box
(`gatebox run`, licensed) with a Custom rule added by `gatebox antispam rules
add` while it runs. What the rules found is read in the X-Gatebox-Checks
and X-Spam-* fields of the message as queued or delivered."""

from __future__ import annotations

import email.utils
import smtplib

import pytest

from firmware.config import Store
from firmware.mail.headers import unfolded_headers
from firmware.mail.quarantine import Quarantine
from softpaks.antispam import content_filter, rules
from softpaks.antispam.rules import GTUBE_STRING
from softpaks.antispam.rules import custom
from tests.support.gateway import InProcessGateway
from tests.support.net import wait_until

UNTRUSTED = "127.0.0.2"


def header(message: bytes, name: str) -> str:
    return next((value for field, value in unfolded_headers(message) if field == name.lower()), "")


def message(subject: str, body: str, number: int, extra: str = "") -> bytes:
    return (f"From: Alice <alice@outside.test>\r\nTo: bob@example.com\r\nSubject: {subject}\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: <r{number}@outside.test>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}\r\n"
            f"{body}\r\n").encode()


@pytest.fixture
def gateway(tmp_path):
    box = InProcessGateway(tmp_path / "box", settings={content_filter.ACTIVE: "on"})
    # The checks read the Content Filter records and Custom rules from the
    # box's database, through a connection of their own.
    box.rules_store = Store(box.data_dir)
    for check in content_filter.policy_checks(box.rules_store) + rules.policy_checks(box.rules_store):
        box.policy.add(check)
    box.start()
    yield box
    box.stop()
    box.rules_store.close()


def send(box, data: bytes, source=UNTRUSTED):
    with smtplib.SMTP(box.host, box.port, timeout=10, source_address=(source, 0)) as client:
        client.ehlo("mail.outside.test")
        client.sendmail("alice@outside.test", ["bob@example.com"], data)


def queued_with(box, subject_part: str) -> bytes:
    found = wait_until(lambda: next((m for _, m in box.queued("incoming")
                                     if subject_part in header(m, "Subject")), None),
                       10, 0.05, f"a queued message about {subject_part!r}")
    return found


def test_gtube_is_scored_1000_and_marked(gateway):
    send(gateway, message("Filter test", f"A test.\r\n{GTUBE_STRING}", 1))
    got = queued_with(gateway, "Filter test")
    assert "GTUBE(1000" in header(got, "X-Gatebox-Checks")
    assert header(got, "X-Spam-Flag") == "YES"
    assert header(got, "Subject") == "[SPAM] Filter test"
    assert "GTUBE" in header(got, "X-Spam-Report")


def test_clean_mail_gets_no_rule_symbol(gateway):
    send(gateway, message("Minutes", "Here are the minutes of the meeting.", 2))
    got = queued_with(gateway, "Minutes")
    checks = header(got, "X-Gatebox-Checks")
    assert checks.startswith("total=0"), checks
    assert header(got, "X-Spam-Flag") == ""


def test_mail_from_trusted_networks_is_not_scored(gateway):
    send(gateway, message("Trusted test", GTUBE_STRING, 3), source="127.0.0.1")
    got = queued_with(gateway, "Trusted test")
    assert "GTUBE" not in header(got, "X-Gatebox-Checks")
    assert header(got, "Subject") == "Trusted test"


def test_heuristic_and_strict_mime_rules_show_in_the_report(gateway):
    forged = message("YOU HAVE WON A BIG PRIZE", "Claim it now.", 4,
                     "X-Mailer: Microsoft Outlook 16.0\r\n").replace(b"MIME-Version: 1.0\r\n", b"")
    send(gateway, forged)
    got = queued_with(gateway, "PRIZE")
    checks = header(got, "X-Gatebox-Checks")
    for symbol in ("SUBJ_ALL_CAPS(1", "FORGED_OUTLOOK_MID(2", "MIME_NO_VERSION(1"):
        assert symbol in checks, checks


def test_a_custom_rule_scores_once_added(gateway):
    gateway.configure(**{content_filter.CUSTOM_FILTER: "on"})
    send(gateway, message("Offer one", "Cheap watches here.", 5))
    assert "CUSTOM_RULE" not in header(queued_with(gateway, "Offer one"), "X-Gatebox-Checks")
    gateway.call(lambda: custom.add(gateway.rules_store, "body", "", "regex",
                                    r"cheap\s+watch", "6", "replica watches"))
    gateway.call(gateway.watcher.refresh)
    send(gateway, message("Offer two", "Cheap  watches here.", 6))
    got = queued_with(gateway, "Offer two")
    assert "CUSTOM_RULE_1(6" in header(got, "X-Gatebox-Checks")
    assert header(got, "X-Spam-Flag") == "YES"          # 6 >= Medium's tag threshold of 5
    assert "replica watches" in header(got, "X-Spam-Report")


# ---- a running box ---------------------------------------------------------------------------
@pytest.fixture
def box(make_box, lan_server, vendor, box_serial):
    made = make_box(**{"email.server_type": "relay", "email.mail_server_address": lan_server.address,
                       "email.trusted_networks": "127.0.0.1/32"})
    made.cli("license", "activate", vendor.issue(antispam=None))
    made.configure(**{content_filter.ACTIVE: "on", content_filter.CUSTOM_FILTER: "on",
                      content_filter.ACTION: "quarantine"})
    return made.start()


def test_a_rule_added_with_the_command_quarantines_in_the_running_box(box, lan_server):
    added = box.cli("antispam", "rules", "add", "--header", "Subject", "--score", "spam",
                    "--description", "known campaign", "golden opportunity")
    assert "added CUSTOM_RULE_1" in added.stdout
    # smtpd reads the rules again once it sees the new generation; until
    # then a message may pass, so the test sends until one is held.
    numbers = iter(range(100, 200))

    def held():
        send_box(box, message("A golden opportunity", "Reply today.", next(numbers)))
        return [item for item in Quarantine(box.data).items()]
    [item, *_] = wait_until(held, 30, 0.5, "a message held by the custom rule")
    _, kept = Quarantine(box.data).load(item.id)
    assert "CUSTOM_RULE_1(1000" in header(kept, "X-Gatebox-Checks")
    assert "known campaign" in header(kept, "X-Spam-Report")
    send_box(box, message("Lunch", "See you at noon.", 1))
    wait_until(lambda: any(b"Subject: Lunch" in r.content for r in lan_server.received), 30, 0.2,
               "the clean message at the LAN server")
    passed = [r.content for r in lan_server.received if b"golden opportunity" in r.content]
    # Only messages sent before smtpd had read the rule may have passed, unmarked by it.
    assert all(b"CUSTOM_RULE_1" not in content for content in passed)


def send_box(box, data: bytes):
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30, source_address=(UNTRUSTED, 0)) as client:
        client.ehlo("mail.outside.test")
        client.sendmail("alice@outside.test", ["bob@example.com"], data)
