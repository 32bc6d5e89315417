"""The firmware image booted under QEMU and used from outside, as the office
would: Chromium on the forwarded HTTPS port, SMTP and IMAP on theirs, and the
serial console (read, never typed into). One box for the module, booted once
and rebooted once, through its web UI, in the middle.

The office's LAN mail server and the Internet smarthost are Postfix's
smtp-sink on the host's loopback; the box reaches them as 10.0.2.2 (QEMU user
networking maps that to 127.0.0.1). The factory seed (QEMU fw_cfg, applied on
the first boot only) names them: that they still hold after the reboot shows
the settings survived. The license is issued with the development signing key
the image was built to trust (build/keys/, made by `make image`)."""

from __future__ import annotations

import re
import smtplib

import pytest
from playwright.sync_api import expect

from tests.support.net import wait_for_banner, wait_until

from .conftest import (ADMIN_PASSWORD, HOST_FROM_GUEST, Sink, add_user, console_text,
                       expect_licensed, imap_login_storm, imap_messages, issue_license, send,
                       setup_code, sign_in, smtp_banner)

# Software emulation (no KVM) boots in about two minutes; give it room.
pytestmark = pytest.mark.timeout(1200)
BOOT_SECONDS = 600
DELIVERY_SECONDS = 180
BOB_PASSWORD = "bob's mailbox pw"
CAROL_PASSWORD = "carol's mailbox pw"
QUEUE = "/email-server/queue"


def refuses_unknown_local_user(port: int) -> bool:
    """True once smtpd works in stand-alone mode: Address Verification
    (Reject, the default) refuses a local address no user answers to at
    RCPT time, where Relay mode would pass it on. Nothing is queued."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.ehlo("client.test")
            client.mail("alice@internet.test")
            code, _ = client.rcpt("nobody-at-all@example.com")
            client.rset()
    except (OSError, smtplib.SMTPException):
        return False
    return code == 550


def imap_answers(port: int) -> bool:
    """Dovecot is started by the services once the server type is stand-alone."""
    try:
        return smtp_banner(port).startswith(b"* OK")
    except OSError:
        return False


def deferred_on_queue_page(page, admin_url: str, subject: str) -> bool:
    """Email Server > Queue lists the message as deferred with the error of
    the attempt that failed."""
    page.goto(admin_url + QUEUE)
    row = page.locator("table.queue tbody tr.state-deferred", has_text=subject)
    return row.count() == 1 and row.locator(".hint").count() == 1


@pytest.fixture(scope="module")
def internet(tmp_path_factory):
    sink = Sink(tmp_path_factory.mktemp("smarthost"))
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def box(machine_factory, lan, internet):
    machine = machine_factory("appliance", seed={
        "email.domain": "example.com",
        "email.mail_server_address": f"{HOST_FROM_GUEST}:{lan.port}",
        "email.relay_server_address": f"{HOST_FROM_GUEST}:{internet.port}",
        # Quick retries, so mail held while a server is down goes out soon after.
        "email.retry_minimum_seconds": "5",
        "email.retry_maximum_seconds": "10",
    })
    machine.wait_healthy(BOOT_SECONDS, boot=1)
    return machine


@pytest.fixture(scope="module")
def admin_url(box):
    return f"https://127.0.0.1:{box.ports['https']}"


def test_first_boot_initialises_data_and_marks_the_boot_good(box):
    console = console_text(box)
    assert "gatebox-firstboot: /data initialised" in console
    assert f"seed: email.mail_server_address = {HOST_FROM_GUEST}:" in console
    health = re.search(r"gatebox-health: boot good slot=(\w) .*https=(\w+).*\((.*)\)", console)
    assert health, console[-3000:]
    assert health.group(1) == "A"
    assert health.group(2) == "ok"
    assert health.group(3) == "bootloader flags set"


def test_smtp_and_submission_answer_on_the_forwarded_ports(box):
    banner = smtp_banner(box.ports["smtp"])
    assert banner.startswith(b"220 ") and b"ESMTP" in banner
    assert smtp_banner(box.ports["submission"]).startswith(b"220")


def test_first_boot_setup_over_https(box, admin_url, page, shot):
    page.goto(admin_url + "/")
    expect(page.locator("h1")).to_have_text("First-time setup")
    serial = page.locator("#serial").inner_text().strip()
    assert serial and "unknown" not in serial.lower()
    shot(page, "setup")
    page.fill("#setup_code", setup_code(box))
    page.fill("#password", ADMIN_PASSWORD)
    page.fill("#confirm", ADMIN_PASSWORD)
    expect(page.locator("#email__domain")).to_have_value("example.com")  # from the seed
    page.click("button[name=finish]")
    expect(page.locator("h1")).to_have_text("Dashboard")


def test_sign_in_and_activate_the_mail_server_license(box, admin_url, page, shot):
    sign_in(page, admin_url)
    page.goto(admin_url + "/system/licenses")
    serial = page.locator("#serial").inner_text().strip()
    page.fill("#key", "GATEBOX-NOT-A-KEY")
    page.click("button[name=activate]")
    expect(page.locator(".flash.error")).to_be_visible()
    page.fill("#key", issue_license(serial, "mailserver"))
    page.click("button[name=activate]")
    expect(page.locator(".flash.ok")).to_contain_text("mailserver")
    shot(page, "licensed")


def test_relay_mode_sends_mail_to_the_lan_server(box, lan):
    send(box, "hello office", "bob@example.com")
    wait_until(lambda: lan.has("hello office"), timeout=DELIVERY_SECONDS, interval=1,
               what="delivery to the LAN server")


def test_stand_alone_mail_server_read_back_over_imap_and_imaps(box, admin_url, page, shot):
    sign_in(page, admin_url)
    page.goto(admin_url + "/email-server/settings")
    page.select_option("#email__server_type", "standalone")
    page.click("button[name=apply]")
    expect(page.locator(".flash.ok")).to_be_visible()
    add_user(page, admin_url, "bob", BOB_PASSWORD)
    shot(page, "users")

    # The server type change reaches the running services within a second or
    # two; until then bob@ would still be relayed to the LAN server.
    wait_until(lambda: refuses_unknown_local_user(box.ports["smtp"]), timeout=DELIVERY_SECONDS,
               interval=1, what="smtpd in stand-alone mode")
    wait_until(lambda: imap_answers(box.ports["imap"]), timeout=DELIVERY_SECONDS, interval=1,
               what="the IMAP server")
    send(box, "for bob's mailbox", "bob@example.com")
    messages = wait_until(lambda: imap_messages(box.ports["imap"], "bob", BOB_PASSWORD),
                          timeout=DELIVERY_SECONDS, interval=2, what="bob's message over IMAP")
    assert any(b"Subject: for bob's mailbox" in m for m in messages)
    over_ssl = imap_messages(box.ports["imaps"], "bob", BOB_PASSWORD, implicit_tls=True)
    assert any(b"Subject: for bob's mailbox" in m for m in over_ssl)


def test_a_storm_of_twenty_imap_logins_is_answered_and_the_box_keeps_running(box, admin_url, page):
    # Each login's password check runs in the box's auth service, two at a
    # time; none starts a program that would not fit beside the others.
    sign_in(page, admin_url)
    add_user(page, admin_url, "carol", CAROL_PASSWORD)
    results = imap_login_storm(box.ports["imap"],
                               [("bob", BOB_PASSWORD), ("carol", CAROL_PASSWORD)] * 10)
    assert [ok for ok, _, _ in results] == [True] * 20, results
    assert "Out of memory" not in console_text(box)
    assert smtp_banner(box.ports["smtp"]).startswith(b"220")


def test_reboot_through_the_ui_keeps_settings_license_and_mail(box, admin_url, page, internet, shot):
    internet.stop()
    send(box, "held while the smarthost is down", "carol@internet.test")
    # The box tried, failed and deferred the message: the reboot meets it in
    # the deferred queue with its attempt on record.
    sign_in(page, admin_url)
    wait_until(lambda: deferred_on_queue_page(page, admin_url, "held while the smarthost is down"),
               timeout=DELIVERY_SECONDS, interval=2, what="the message deferred on the queue page")
    shot(page, "queue-deferred")

    page.goto(admin_url + "/system/firmware")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#reboot-button")
    expect(page.locator(".flash.ok")).to_contain_text("rebooting")
    wait_until(lambda: box.boots_seen() >= 2, timeout=BOOT_SECONDS, interval=1,
               what="the second boot")
    box.wait_healthy(BOOT_SECONDS, boot=2)
    wait_for_banner("127.0.0.1", box.ports["smtp"], timeout=60)

    internet.start()
    # Delivered through the smarthost named in the seed: the queue and the
    # settings were both still on /data.
    wait_until(lambda: internet.has("held while the smarthost is down"),
               timeout=DELIVERY_SECONDS, interval=1, what="delivery of the held message")
    messages = imap_messages(box.ports["imap"], "bob", BOB_PASSWORD)
    assert any(b"Subject: for bob's mailbox" in m for m in messages)

    sign_in(page, admin_url)   # the administrator's password is still the one set up
    page.goto(admin_url + "/email-server/settings")
    expect(page.locator("#email__server_type")).to_have_value("standalone")
    expect_licensed(page, admin_url, "mailserver")
    shot(page, "licenses-after-reboot")

    console = console_text(box)
    assert console.count("gatebox-firstboot: /data initialised") == 1, "second boot re-initialised /data"


def test_second_boot_uses_the_stored_bootloader_state(box):
    """GRUB read back what the first boot's health check wrote: slot A was
    marked good (so it is chosen again) and the machine id is passed on."""
    console = console_text(box)
    command_lines = re.findall(r"Command line: (.*)", console)
    assert len(command_lines) >= 2
    assert "rauc.slot=A" in command_lines[1]
    assert re.search(r"systemd\.machine_id=[0-9a-f]{32}", command_lines[1])
    assert console.count("gatebox-health: boot good slot=A") >= 2
