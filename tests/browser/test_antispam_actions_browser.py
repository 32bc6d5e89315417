"""The Filter Match Action set on Anti-Spam > Content Filter in Chromium,
then shown end to end: a real SMTP client outside Trusted Networks sends
the GTUBE test message to the running box (relaying to a real LAN server,
smtp-sink; content lookups answered by dnsmasq). Reject: 550 5.7.1 at DATA
and nothing delivered; Quarantine: the message listed on Email Server >
Quarantine; Mark with Append [SPAM]: delivered tagged. A domain's own record
through the scope chooser, and a refused scope named beside its field."""

from __future__ import annotations

import email
import email.policy
import email.utils
import smtplib

import pytest
from playwright.sync_api import expect

from firmware.config import Store
from softpaks.antispam import content_filter
from tests.browser.conftest import ADMIN_PASSWORD, sign_in
from tests.support.box import Box, wait_until_idle
from tests.support.dnsmasq import DnsServer
from tests.support.net import wait_until
from tests.support.sink import SmtpSink

CLIENT = "127.0.0.5"
SENDER = "someone@outside.test"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture
def lan(tmp_path):
    sink = SmtpSink(tmp_path / "lan").start()
    yield sink
    sink.stop()


@pytest.fixture
def dns(tmp_path):
    server = DnsServer(tmp_path / "dns", ["--local=/outside.test/", "--local=/example.com/",
                                          f"--host-record=mail.outside.test,{CLIENT}"],
                       probe="mail.outside.test").start()
    yield server
    server.stop()


@pytest.fixture
def box(tmp_path, lan, dns, vendor, box_serial):
    made = Box(tmp_path / "box", web=True, settings={
        "email.server_type": "relay", "email.mail_server_address": lan.address,
        "email.trusted_networks": "127.0.0.1/32", **dns.settings})
    made.cli("license", "activate", vendor.issue(antispam=None))
    made.cli("user", "add", "admin", "--admin", "--password", ADMIN_PASSWORD)
    made.start()
    yield made
    made.stop()


@pytest.fixture
def admin(page, box):
    sign_in(page, box)
    expect(page.locator("h1")).to_have_text("Dashboard")
    return page


def in_store(box, work):
    store = Store(box.data)
    try:
        return work(store)
    finally:
        store.close()


def gtube(number: int) -> bytes:
    return (f"From: <{SENDER}>\r\nTo: <bob@example.com>\r\nSubject: Filter test {number}\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\nMessage-ID: <browser-{number}@outside.test>"
            f"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{GTUBE}\r\n").encode()


def send(box, number: int) -> tuple[int, str]:
    """The reply to the end of DATA."""
    with smtplib.SMTP(timeout=30, source_address=(CLIENT, 0)) as client:
        client.connect(box.host, box.smtp_port)
        client.ehlo("mail.outside.test")
        try:
            client.sendmail(SENDER, ["bob@example.com"], gtube(number))
        except smtplib.SMTPDataError as refused:
            return refused.smtp_code, refused.smtp_error.decode()
        return 250, ""


def answered(box, code: int, start: int) -> tuple[int, str]:
    """Sends test messages until the running box answers `code` (it reloads
    the settings a moment after the page saved them)."""
    number = [start]

    def attempt():
        number[0] += 1
        reply = send(box, number[0])
        return reply if reply[0] == code else None
    return wait_until(attempt, 20, 0.3, f"the box to answer {code}")


def apply_filter(page, box, action: str, tag_subject: bool = True):
    page.goto(box.web_url + "/anti-spam/content-filter")
    page.check("#content_filter")
    page.uncheck("#default_filter")
    page.check("#heuristic")
    page.check("input[name=level][value=medium]")
    page.check(f"input[name=action][value={action}]")
    page.set_checked("#tag_subject", tag_subject)
    page.click("button[name=apply]")
    expect(page.locator(".flash.ok")).to_contain_text("Saved the Content Filter of All Domains")


def test_each_action_set_on_the_page_takes_effect(admin, box, lan, shot):
    page = admin
    page.goto(box.web_url + "/")
    page.click("nav.menu a[href='/anti-spam/content-filter']")
    expect(page.locator("h1")).to_have_text("Anti-Spam: Content Filter")
    expect(page.locator("#strict-mime-warning")).to_contain_text("strict MIME")
    expect(page.locator("#thresholds tr[data-level=high]")).to_contain_text("3.5")

    apply_filter(page, box, "reject")
    expect(page.locator("#in-effect")).to_contain_text("marked from 5, rejected from 10")
    shot(page, "antispam-content-filter-reject")
    code, text = answered(box, 550, 0)
    assert text.startswith("5.7.1 Message refused as spam")
    # What was sent before the box reloaded its settings was delivered;
    # from the first refusal on, nothing reaches the LAN server or waits.
    wait_until_idle(box)
    before = lan.final_count()
    assert send(box, 50)[0] == 550
    wait_until_idle(box)
    assert lan.final_count() == before and box.pending() == []

    apply_filter(page, box, "quarantine")
    answered(box, 250, 100)
    page.goto(box.web_url + "/email-server/quarantine")
    row = page.locator("tr[data-qid]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("spam")
    shot(page, "antispam-content-filter-quarantined")
    wait_until_idle(box)
    assert lan.final_count() == before

    apply_filter(page, box, "mark")
    # 250 answers quarantine too: send until a message reaches the LAN server.
    number = [200]

    def delivered_one():
        number[0] += 1
        assert send(box, number[0])[0] == 250
        wait_until_idle(box)
        return lan.final_count() > before
    wait_until(delivered_one, 30, 0.2, "a marked message at the LAN server")
    # The earlier ones came before the first reload, untouched.
    [got] = [m for m in (email.message_from_bytes(raw, policy=email.policy.default)
                         for raw in lan.messages()) if m["X-Spam-Flag"]]
    assert got["Subject"].startswith("[SPAM] Filter test ")
    assert got["X-Spam-Flag"] == "YES" and "GTUBE" in got["X-Spam-Report"]


def test_a_domain_record_through_the_scope_chooser(admin, box):
    page = admin
    page.goto(box.web_url + "/anti-spam/content-filter")
    page.click("nav.tabs a[data-kind=user]")
    page.fill("#scope", "eve@elsewhere.test")
    page.click("button[name=open]")
    expect(page.locator("#scope-rule")).to_contain_text("is not a local domain of this box")
    expect(page.locator("#filters")).to_have_count(0)

    page.click("nav.tabs a[data-kind=domain]")
    page.select_option("#scope", "example.com")
    page.click("button[name=open]")
    expect(page.locator("#inherited")).to_contain_text("the one of All Domains applies")
    page.check("#content_filter")
    page.check("input[name=level][value=high]")
    page.check("input[name=action][value=quarantine]")
    page.click("button[name=apply]")
    expect(page.locator(".flash.ok")).to_contain_text("Saved the Content Filter of "
                                                      "domain example.com")
    expect(page.locator("#inherited")).to_have_count(0)
    expect(page.locator("#in-effect")).to_contain_text("marked from 3.5, quarantined from 7")
    found = in_store(box, lambda s: content_filter.record(s, "domain", "example.com"))
    assert (found.active, found.level, found.action) == (True, "high", "quarantine")
    assert in_store(box, lambda s: s.get(content_filter.ACTIVE)) is False

    page.click("button[name=clear]")
    expect(page.locator(".flash.ok")).to_contain_text("applies to it now")
    assert in_store(box, lambda s: content_filter.record(s, "domain", "example.com")) is None
