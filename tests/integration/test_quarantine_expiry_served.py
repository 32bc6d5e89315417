"""The running box's scheduled expiry: what outlived its lifetime leaves
the quarantine without anyone asking. Spam goes after Keep Quarantined Spam
(Anti-Spam, 7 days by default), through the SoftPak's digest service;
anything else after Keep Quarantined Messages (30 days), through smtpd's
own hourly job. Both run once at start, then hourly."""

from __future__ import annotations

import time

import pytest

from firmware.config import Store
from firmware.mail.queue import NotInQueue
from firmware.mail.quarantine import Quarantine
from firmware.mail.submit import Submission
from tests.support.net import wait_until

DAY = 86400


def hold(box, kind: str, age_days: float, subject: str) -> str:
    store = Store(box.data)
    try:
        return Quarantine(box.data).put(Submission(
            sender="eve@example.org", recipients=["bob@example.com"],
            message=f"Subject: {subject}\r\nFrom: <eve@example.org>\r\n\r\nHeld.\r\n".encode(),
            origin="smtpd", direction="inbound", client_address="192.0.2.9",
            received=time.time() - age_days * DAY), kind, f"held as {kind}", store.snapshot())
    finally:
        store.close()


def test_the_running_box_expires_each_kind_after_its_own_lifetime(make_box, vendor, box_serial):
    box = make_box(**{"email.server_type": "relay", "email.trusted_networks": "127.0.0.1/32"})
    box.cli("license", "activate", vendor.issue(antispam=None))
    old_spam = hold(box, "spam", 8, "old spam")
    young_spam = hold(box, "spam", 6, "young spam")
    week_old_virus = hold(box, "virus", 8, "virus of last week")
    old_virus = hold(box, "virus", 31, "virus of last month")
    assert len(Quarantine(box.data).items()) == 4
    box.start()
    wait_until(lambda: {i.id for i in Quarantine(box.data).items()} == {young_spam, week_old_virus},
               60, 0.2, "the expired messages to go")
    log = box.log()
    assert "quarantine: 1 spam message(s) older than 7 days deleted" in log
    assert "quarantine: 1 message(s) older than 30 days deleted" in log
    for gone in (old_spam, old_virus):
        with pytest.raises(NotInQueue):
            Quarantine(box.data).load(gone)
