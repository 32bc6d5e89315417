"""Firmware updates on a booted image, from outside: a license key file on a
USB stick hot-plugged through the QEMU monitor, a newer signed bundle
installed through System > Firmware and booted in the other slot with
settings, license and mail intact, then a bundle whose services fail, which
the box tries once and abandons by itself, going back to the slot it ran.

Bundles are built for the test from the image's own root (qemu/build-bundle.sh,
signed with the development CA the image trusts, made in build/keys/)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.net import wait_until
from tests.support.tools import require

from .conftest import (HOST_FROM_GUEST, TOP, console_text, expect_licensed,
                       finish_first_boot_setup, issue_license, send, sign_in)

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module", autouse=True)
def stick_and_bundle_tools():
    require("unsquashfs", "mkfs.vfat", "mcopy", "rauc")


BOOT_SECONDS = 600
DELIVERY_SECONDS = 180
INSTALL_SECONDS = 600

BROKEN_SERVICES = """#!/bin/sh
# A firmware whose mail services cannot start.
mkdir -p "$1/etc/systemd/system/gatebox-services.service.d"
printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\n' \\
    > "$1/etc/systemd/system/gatebox-services.service.d/broken.conf"
"""


def image_version() -> str:
    squashfs = TOP / "build" / "x86_64" / "images" / "rootfs.squashfs"
    return subprocess.run(["unsquashfs", "-cat", str(squashfs), "etc/gatebox/version"],
                          capture_output=True, text=True, check=True).stdout.strip()


def later(version: str, steps: int) -> str:
    major, minor, patch = (version.split(".") + ["0", "0"])[:3]
    return f"{major}.{minor}.{int(patch) + steps}"


def build_bundle(version: str, customize: Path | None = None) -> Path:
    env = {"GATEBOX_BUNDLE_VERSION": version, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if customize:
        env["GATEBOX_BUNDLE_CUSTOMIZE"] = str(customize)
    subprocess.run([str(TOP / "qemu" / "build-bundle.sh"), "x86_64"], env=env, check=True,
                   capture_output=True, timeout=900)
    bundle = TOP / "build" / f"gatebox-x86_64-{version}.raucb"
    assert bundle.exists(), bundle
    return bundle


@pytest.fixture(scope="module")
def versions():
    base = image_version()
    return {"base": base, "newer": later(base, 1), "broken": later(base, 2)}


@pytest.fixture(scope="module")
def bundles(versions, tmp_path_factory):
    script = tmp_path_factory.mktemp("bundle-scripts") / "break-services.sh"
    script.write_text(BROKEN_SERVICES)
    script.chmod(0o755)
    return {"newer": build_bundle(versions["newer"]),
            "broken": build_bundle(versions["broken"], customize=script)}


@pytest.fixture(scope="module")
def box(machine_factory, lan, bundles):
    machine = machine_factory("updated", seed={
        "email.domain": "example.com",
        "email.mail_server_address": f"{HOST_FROM_GUEST}:{lan.port}",
    })
    machine.wait_healthy(BOOT_SECONDS, boot=1)
    return machine


@pytest.fixture(scope="module")
def admin_url(box):
    return f"https://127.0.0.1:{box.ports['https']}"


def usb_stick_with(directory: Path, name: str, content: str) -> Path:
    """A FAT-formatted stick image holding one file, made without mounting."""
    stick = directory / "stick.img"
    subprocess.run(["mkfs.vfat", "-C", "-n", "GATEBOX", str(stick), "8192"], check=True,
                   capture_output=True)
    payload = directory / name
    payload.write_text(content)
    subprocess.run(["mcopy", "-i", str(stick), str(payload), f"::{name}"], check=True)
    return stick


def health_lines(box) -> list[str]:
    return re.findall(r"gatebox-health: boot .*", console_text(box))


def install_through_the_ui(page, admin_url: str, bundle: Path, version: str):
    page.goto(admin_url + "/system/firmware")
    page.set_input_files("#bundle", str(bundle))
    page.click("#upload-button")
    expect(page.locator("#checked-version")).to_have_text(version, timeout=INSTALL_SECONDS * 1000)
    page.click("#install-button")
    expect(page.locator("#install-state")).to_have_text("installed", timeout=INSTALL_SECONDS * 1000)


def reboot_through_the_ui(page, admin_url: str):
    page.goto(admin_url + "/system/firmware")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#reboot-button")
    expect(page.locator(".flash.ok")).to_contain_text("rebooting")


def test_setup_and_a_license_from_a_usb_stick(box, admin_url, page, tmp_path, shot):
    finish_first_boot_setup(page, box, admin_url)

    page.goto(admin_url + "/system/licenses")
    serial = page.locator("#serial").inner_text().strip()
    stick = usb_stick_with(tmp_path, "gatebox-license.txt", issue_license(serial, "mailserver") + "\n")
    box.plug_usb_stick(stick)

    def offered():
        page.goto(admin_url + "/system/firmware")
        return page.locator("#usb-offers").count() > 0
    wait_until(offered, timeout=120, interval=3, what="the USB stick's offer on System > Firmware")
    expect(page.locator("#usb-offers")).to_contain_text("gatebox-license.txt")
    shot(page, "usb-offer")
    page.click("#usb-offers a:has-text('Apply')")
    page.click("#confirm-button")
    expect_licensed(page, admin_url, "mailserver")
    box.unplug_usb_stick()


def test_a_newer_bundle_installs_and_boots_in_the_other_slot(box, admin_url, page, bundles,
                                                              versions, lan, shot):
    sign_in(page, admin_url)
    install_through_the_ui(page, admin_url, bundles["newer"], versions["newer"])
    shot(page, "installed")
    reboot_through_the_ui(page, admin_url)
    wait_until(lambda: box.boots_seen() >= 2, timeout=BOOT_SECONDS, interval=1, what="the second boot")
    line = box.wait_healthy(BOOT_SECONDS, boot=2)
    assert "slot=B" in line

    sign_in(page, admin_url)   # the administrator and the settings came along
    page.goto(admin_url + "/system/firmware")
    expect(page.locator("#running-version")).to_have_text(versions["newer"])
    expect(page.locator("#slot-other")).to_contain_text(versions["base"])
    expect_licensed(page, admin_url, "mailserver")
    send(box, "after the update", "bob@example.com")
    wait_until(lambda: lan.has("after the update"), timeout=DELIVERY_SECONDS, interval=1,
               what="delivery to the LAN server named in the settings")


def test_a_bundle_whose_services_fail_is_abandoned(box, admin_url, page, bundles, versions, shot):
    sign_in(page, admin_url)
    install_through_the_ui(page, admin_url, bundles["broken"], versions["broken"])
    reboot_through_the_ui(page, admin_url)

    # Boot 3 tries slot A with the broken firmware; the health check gives up
    # on it and reboots; boot 4 is slot B again.
    wait_until(lambda: box.boots_seen() >= 4, timeout=2 * BOOT_SECONDS, interval=2,
               what="the try of the broken slot and the way back")
    wait_until(lambda: len(health_lines(box)) >= 4, timeout=BOOT_SECONDS, interval=2,
               what="the health check of the fourth boot")
    lines = health_lines(box)
    assert "NOT good slot=A" in lines[2] and "rebooting into slot B" in lines[2], lines
    assert "boot good slot=B" in lines[3], lines

    sign_in(page, admin_url)
    page.goto(admin_url + "/system/firmware")
    expect(page.locator("#running-version")).to_have_text(versions["newer"])
    expect(page.locator("#abandoned")).to_contain_text(versions["broken"])
    shot(page, "abandoned")
