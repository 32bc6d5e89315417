"""Retrieve now in Chromium: a box in ETRN mode (`gatebox run` with its
retrieval service), the ISP a private Postfix on 127.0.0.2 holding the
office's mail until ETRN. The button on Email Server > Settings makes the
service send ETRN; the page shows the ISP's 250, and the held mail arrives
in the user's mailbox. The schedule's ticks are hours away, so only the
button can have triggered it."""

from __future__ import annotations

import datetime
import smtplib

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_PASSWORD, sign_in
from tests.support.isp_postfix import IspPostfix
from tests.support.mailserver import MailBox

DOMAIN = "example.com"
SETTINGS = "/email-server/settings"


def zone_between_ticks() -> str:
    """A fixed-offset zone in which the real clock is half-way between two
    of the 8-hourly ticks (local hour 4 mod 8): no scheduled ETRN during the test."""
    hours = datetime.datetime.now(datetime.timezone.utc).hour
    offset = (4 - hours) % 8
    offset = offset - 8 if offset > 4 else offset
    # POSIX-style names: Etc/GMT-3 is three hours east of Greenwich.
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


@pytest.fixture
def isp_and_box(tmp_path, vendor, box_serial):
    started = []
    try:
        box = MailBox(tmp_path / "box", vendor, web=True, **{
            "system.timezone": zone_between_ticks(), "email.business_schedule": "480",
            "email.evening_schedule": "480", "email.weekend_schedule": "480"})
        box.cli("user", "add", "admin", "--admin", "--password", ADMIN_PASSWORD)
        isp = IspPostfix(DOMAIN, box.host, box.smtp_port).start()
        started.append(isp)
        box.configure(**{"email.server_type": "etrn", "email.isp_server": f"{isp.host}:{isp.port}"})
        box.start()
        started.append(box)
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


def test_retrieve_now_sends_etrn_shows_the_250_and_the_mail_arrives(page, isp_and_box, shot):
    isp, box = isp_and_box
    queue_at_isp(isp, f"bob@{DOMAIN}", "held until ETRN")
    assert box.mailbox("bob") == []

    sign_in(page, box)
    expect(page.locator("h1")).to_have_text("Dashboard")
    panel = page.locator("#panel-retrieval")
    expect(panel.locator("h2")).to_have_text("Retrieval (ETRN)")
    expect(panel).to_contain_text("Next retrieval: ")
    expect(panel).to_contain_text("Last retrieval: none yet")

    page.goto(box.web_url + SETTINGS)
    panel = page.locator("#panel-retrieval")
    expect(panel).to_contain_text("Last retrieval: none yet")
    shot(page, "before")
    assert isp.queued_for(f"bob@{DOMAIN}") == 1
    assert "etrn=" not in isp.log()

    # The page waits for the service's answer (up to 20 s) before it comes back.
    with page.expect_navigation(timeout=30_000):
        page.click("#retrieval-action")
    expect(page).to_have_url(box.web_url + SETTINGS)
    reply = f"etrn: 0 fetched (ETRN {DOMAIN} to {isp.host}:{isp.port}: 250 "
    expect(page.locator("p.flash.ok")).to_contain_text("Retrieved: " + reply)
    expect(panel).to_contain_text("Last retrieval: ")
    expect(panel).not_to_contain_text("none yet")
    expect(panel).to_contain_text(reply)
    shot(page, "after")
    assert "etrn=1" in isp.log()

    box.wait_for_mail("bob", 1, timeout=60)
    assert any(line.endswith("held until ETRN") for line in box.mailbox("bob"))
    assert isp.queued_for(f"bob@{DOMAIN}") == 0

    # The dashboard shows the same last result.
    page.goto(box.web_url + "/")
    expect(page.locator("#panel-retrieval")).to_contain_text(reply)
