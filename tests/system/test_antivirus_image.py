"""The Anti-Virus SoftPak in the booted image, used from outside: signatures
from a USB stick (offered, confirmed, imported), the version on the page
changing with a second stick, scanning switched on, and EICAR sent through
the box's SMTP port as an outside server would, refused with 554; clean
mail still passes to the LAN server, scanned.

The signatures are the tiny test database: MD5 signatures of the EICAR file
and of a clamav-testfiles sample, built on the host with sigtool into an
unsigned container (.cud; only ClamAV can sign a .cvd), so clamd in the
512 MB guest needs a few MB and nothing is downloaded."""

from __future__ import annotations

import smtplib
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.clamd import CLAM_EXE, eicar_bytes, hdb_line
from tests.support.net import wait_until
from tests.support.tools import require

from .conftest import HOST_FROM_GUEST, finish_first_boot_setup, issue_license

pytestmark = pytest.mark.timeout(1800)
BOOT_SECONDS = 600
DELIVERY_SECONDS = 180
SCANNER_SECONDS = 300


@pytest.fixture(scope="module", autouse=True)
def tools():
    require("mkfs.vfat", "mcopy", "sigtool", "clamav-testfiles")


@pytest.fixture(scope="module")
def box(machine_factory, lan):
    machine = machine_factory("antivirus", seed={
        "email.domain": "example.com",
        "email.mail_server_address": f"{HOST_FROM_GUEST}:{lan.port}",
    })
    machine.wait_healthy(BOOT_SECONDS, boot=1)
    return machine


@pytest.fixture(scope="module")
def admin_url(box):
    return f"https://127.0.0.1:{box.ports['https']}"


def tiny_daily(work: Path, version: int) -> Path:
    """daily.cud, version `version`: EICAR and clam.exe by MD5."""
    work.mkdir(parents=True, exist_ok=True)
    eicar = work / "eicar.com"
    eicar.write_bytes(eicar_bytes())
    (work / "COPYING").write_text("test signatures\n")
    (work / "daily.hdb").write_text(hdb_line(eicar, "Gatebox.Test.EICAR") + "\n" +
                                    hdb_line(CLAM_EXE, "Gatebox.Test.ClamExe") + "\n")
    eicar.unlink()
    subprocess.run(["sigtool", f"--datadir={work}", "--build=daily.cud", "--unsigned",
                    f"--cvd-version={version}", "--no-cdiff"], cwd=work, input="gatebox-test\n",
                   capture_output=True, text=True, check=True, timeout=120)
    return work / "daily.cud"


def stick_with(directory: Path, payload: Path) -> Path:
    """A FAT stick image holding `payload` in a clamav/ folder, made without mounting."""
    directory.mkdir(parents=True, exist_ok=True)
    stick = directory / "stick.img"
    subprocess.run(["mkfs.vfat", "-C", "-n", "SIGS", str(stick), "8192"], check=True,
                   capture_output=True)
    subprocess.run(["mmd", "-i", str(stick), "::clamav"], check=True)
    subprocess.run(["mcopy", "-i", str(stick), str(payload), f"::clamav/{payload.name}"], check=True)
    return stick


def import_from_stick(box, page, admin_url, stick: Path, name: str, shot=None):
    box.plug_usb_stick(stick, name=name)

    def offered():
        page.goto(admin_url + "/system/firmware")
        return page.locator("#usb-offers", has_text="daily.cud").count() > 0
    wait_until(offered, timeout=120, interval=3, what="the stick's signature offer")
    row = page.locator("#usb-offers tr", has_text="daily.cud")
    expect(row).to_contain_text("signature file")
    if shot:
        shot(page, "signature-offer")
    row.locator("a:has-text('Apply')").click()
    expect(page.locator("#offer-name")).to_contain_text("daily.cud")
    page.click("#confirm-button")
    expect(page.locator(".flash.ok")).to_contain_text("daily.cud: version")
    box.unplug_usb_stick(name=name)


def smtp_reply_to_eicar(port: int) -> int:
    """The box's final reply to a message carrying EICAR, from an outside sender."""
    message = EmailMessage()
    message["From"] = "mallory@internet.test"
    message["To"] = "bob@example.com"
    message["Subject"] = "eicar through the box"
    message.set_content("see attachment")
    message.add_attachment(eicar_bytes(), maintype="application", subtype="octet-stream",
                           filename="eicar.com")
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
            client.ehlo("mx.internet.test")
            client.send_message(message)
    except smtplib.SMTPDataError as refused:
        return refused.smtp_code
    return 250


def test_signatures_from_usb_scanning_on_and_eicar_refused(box, admin_url, page, lan, tmp_path,
                                                            shot):
    finish_first_boot_setup(page, box, admin_url)
    page.goto(admin_url + "/system/licenses")
    serial = page.locator("#serial").inner_text().strip()
    page.fill("#key", issue_license(serial, "antivirus"))
    page.click("button[name=activate]")
    expect(page.locator(".flash.ok")).to_contain_text("antivirus")

    import_from_stick(box, page, admin_url, stick_with(tmp_path / "one", tiny_daily(
        tmp_path / "build-1", 27500)), "stick1", shot)
    page.goto(admin_url + "/anti-virus/signatures")
    expect(page.locator("main")).to_contain_text("27500")

    # The guest must never reach for ClamAV's mirrors.
    page.select_option("#antivirus__update_source", "offline")
    page.click("button[name=apply]")
    expect(page.locator(".flash.ok")).to_be_visible()

    page.goto(admin_url + "/anti-virus/settings")
    page.check("#antivirus__enabled")
    page.click("button[name=apply]")
    expect(page.locator(".flash.ok")).to_be_visible()

    # While clamd loads, mail waits at the sender (451); then EICAR is refused.
    wait_until(lambda: smtp_reply_to_eicar(box.ports["smtp"]) == 554, timeout=SCANNER_SECONDS,
               interval=5, what="EICAR refused with 554 by the box")
    page.goto(admin_url + "/anti-virus/settings")
    expect(page.locator("#scanner-state")).to_contain_text("running")
    shot(page, "scanner-running")

    # A newer database from a second stick: the page shows its version.
    import_from_stick(box, page, admin_url, stick_with(tmp_path / "two", tiny_daily(
        tmp_path / "build-2", 27501)), "stick2")
    page.goto(admin_url + "/anti-virus/signatures")
    expect(page.locator("main")).to_contain_text("27501")
    shot(page, "signatures-updated")

    # Clean mail still passes, marked as scanned.
    clean = EmailMessage()
    clean["From"] = "alice@internet.test"
    clean["To"] = "bob@example.com"
    clean["Subject"] = "clean through the scanner"
    clean.set_content("nothing to see\n")
    with smtplib.SMTP("127.0.0.1", box.ports["smtp"], timeout=120) as client:
        client.ehlo("mx.internet.test")
        assert client.send_message(clean) == {}
    wait_until(lambda: lan.has("clean through the scanner"), timeout=DELIVERY_SECONDS, interval=1,
               what="the clean message at the LAN server")
    delivered = [m for m in lan.sink.messages() if b"Subject: clean through the scanner" in m]
    assert b"X-Virus-Scanned: clean" in delivered[0]
    assert smtp_reply_to_eicar(box.ports["smtp"]) == 554
