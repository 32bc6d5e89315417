"""ETRN and SMTP Mail-bagging against a private Postfix as the ISP on
127.0.0.2: mail for the office's domain waits in the ISP's queue (its
fast-flush log) and arrives at the box only after the trigger, at the
scheduled time (the retrieval service with an injected clock) or with
`gatebox retrieve now`."""

from __future__ import annotations

import asyncio
import datetime
import smtplib
import time

import pytest

from firmware.config import Store
from firmware.mail import schedule
from softpaks.mailserver.retrieval import state
from softpaks.mailserver.retrieval.runner import RetrievalRunner
from tests.support.isp_postfix import FingerTrigger, IspPostfix
from tests.support.mailserver import MailBox
from tests.support.net import wait_for_banner, wait_until

DOMAIN = "example.com"


def quiet_timezone() -> str:
    """A zone in which the real clock is half-way between two 8-hourly ticks,
    so the box's own retrieval service does not fire during the test; the
    test's service, on its injected clock, does."""
    hours = datetime.datetime.now(datetime.timezone.utc).hour
    offset = (4 - hours) % 8          # local hour = 4 (mod 8)
    offset = offset - 8 if offset > 4 else offset
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


@pytest.fixture
def isp_and_box(tmp_path, vendor, box_serial):
    started = []
    try:
        box = MailBox(tmp_path / "box", vendor, **{
            "system.timezone": quiet_timezone(), "email.business_schedule": "480",
            "email.evening_schedule": "480", "email.weekend_schedule": "480"})
        isp = IspPostfix(DOMAIN, box.host, box.smtp_port)
        isp.start()
        started.append(isp)
        box.start()
        started.append(box)
        wait_for_banner(box.host, box.imap_port, accept=(b"* OK",))
        yield isp, box
    finally:
        for part in reversed(started):
            part.stop()


def queue_at_isp(isp: IspPostfix, recipient: str, subject: str):
    with smtplib.SMTP(isp.host, isp.port, timeout=30) as smtp:
        smtp.sendmail("someone@outside.test", [recipient],
                      f"From: someone@outside.test\r\nTo: {recipient}\r\nSubject: {subject}\r\n\r\n"
                      "held at the ISP\r\n".encode())
    isp.wait_held(recipient)


def test_etrn_at_the_scheduled_time_releases_the_held_mail(isp_and_box):
    isp, box = isp_and_box
    box.configure(**{"email.server_type": "etrn", "email.isp_server": f"{isp.host}:{isp.port}"})
    queue_at_isp(isp, f"bob@{DOMAIN}", "scheduled")

    store = Store(box.data)
    settings = store.snapshot()
    due = schedule.next_retrieval_time(time.time() + 86400, settings)
    fake = {"now": due - 600}
    runner = RetrievalRunner(box.data, clock=lambda: fake["now"], poll=0.1)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(runner.start())
    try:
        # Ten minutes before the tick the service looks and sends nothing.
        wait_until(lambda: runner.looks >= 3, what="the service to read the schedule")
        assert runner.sessions == 0
        # The runner's own figure: the box's service (on the real clock) shares the state row.
        assert runner.next_run == due
        assert isp.queued_for(f"bob@{DOMAIN}") == 1
        assert "etrn=" not in isp.log()
        assert box.mailbox("bob") == []

        fake["now"] = due
        box.wait_for_mail("bob", 1, timeout=60)
        wait_until(lambda: isp.queued_for(f"bob@{DOMAIN}") == 0, what="the ISP's queue to empty")
        assert runner.sessions == 1
        etrn = {a.account: a for a in state.accounts(store)}["etrn"]
        assert etrn.ok and f"ETRN {DOMAIN} to {isp.host}:{isp.port}: 250" in etrn.result
        # The next run is the following tick, not this one again.
        wait_until(lambda: runner.next_run == schedule.next_retrieval_time(due + 1, settings),
                   what="the next run")
    finally:
        loop.run_until_complete(runner.stop())
        loop.close()
        store.close()


def test_etrn_hash_form_and_a_refusal_are_shown(isp_and_box):
    isp, box = isp_and_box
    box.configure(**{"email.server_type": "etrn", "email.isp_server": f"{isp.host}:{isp.port}",
                     "email.etrn_form": "hash"})
    result = box.cli("retrieve", "now")
    assert f"etrn: 0 fetched (ETRN #{DOMAIN} to {isp.host}:{isp.port}: 250 " in result.stdout
    assert "etrn=1" in isp.log()

    # A domain the ISP does not hold mail for: its refusal is shown and kept.
    box.configure(**{"email.domain": "elsewhere.test", "email.etrn_form": "domain"})
    result = box.cli("retrieve", "now", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"etrn: failed: ETRN elsewhere.test to {isp.host}:{isp.port}: 459 " in result.stdout
    store = Store(box.data)
    try:
        etrn = {a.account: a for a in state.accounts(store)}["etrn"]
        assert not etrn.ok and "459" in etrn.last_error and "Node not allowed" in etrn.last_error
    finally:
        store.close()


def test_retrieve_now_sends_etrn(isp_and_box):
    isp, box = isp_and_box
    box.configure(**{"email.server_type": "etrn", "email.isp_server": f"{isp.host}:{isp.port}"})
    queue_at_isp(isp, f"carol@{DOMAIN}", "now")
    assert isp.queued_for(f"carol@{DOMAIN}") == 1
    result = box.cli("retrieve", "now")
    assert f"etrn: 0 fetched (ETRN {DOMAIN} to {isp.host}:{isp.port}: 250" in result.stdout
    box.wait_for_mail("carol", 1, timeout=60)


def test_mail_bagging_finger_releases_the_held_mail(isp_and_box):
    isp, box = isp_and_box
    finger = FingerTrigger(isp).start()
    try:
        box.configure(**{"email.server_type": "mailbag",
                         "email.isp_server": f"{finger.host}:{finger.port}"})
        queue_at_isp(isp, f"bob@{DOMAIN}", "mailbag")
        assert finger.queries == []
        result = box.cli("retrieve", "now")
        assert f"mailbag: 0 fetched (finger {DOMAIN}@{finger.host}:{finger.port}:" in result.stdout
        assert finger.queries == [DOMAIN]
        box.wait_for_mail("bob", 1, timeout=60)
        assert isp.queued_for(f"bob@{DOMAIN}") == 0
    finally:
        finger.stop()
