"""The Anti-Virus SoftPak's pages in Chromium on a licensed box (`gatebox
run`, gunicorn over HTTPS): each page renders from the menu; the settings
are saved, the failure action chosen by its radio button; a signature
database uploaded on the Signatures page changes the version shown; and
the EICAR button sends the test file through the box's own SMTP port to a
real clamd (Debian's, with the tiny test database), which rejects it, then
quarantines it with a notice. One box for the module; a fresh browser per
test."""

import concurrent.futures
import subprocess

import pytest
from playwright.sync_api import expect

from firmware.config import Store
from firmware.mail.quarantine import Quarantine
from softpaks.antivirus import hooks, paths, signatures
from tests.browser.conftest import ADMIN_PASSWORD, sign_in
from tests.support.box import Box
from tests.support.clamd import CLAM_EXE, ClamdProcess, hdb_line, tiny_database
from tests.support.licensing import BOX_SERIAL, Vendor
from tests.support.net import free_port, wait_until
from tests.support.tools import require

PAGES = (("settings", "Anti-Virus: Settings"), ("signatures", "Anti-Virus: Signatures"),
         ("eicar-test", "Anti-Virus: EICAR Test"))


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        vendor = Vendor(tmp_path_factory.mktemp("vendor-keys"))
        env.setenv("GATEBOX_VENDOR_PUBKEYS", str(vendor.public_path))
        env.setenv("GATEBOX_SERIAL", BOX_SERIAL)
        # The LAN mail server is a closed port: notices wait in the queue, where the page finds them.
        made = Box(tmp_path_factory.mktemp("antivirus-web") / "box", web=True,
                   settings={"email.mail_server_address": f"127.0.0.1:{free_port()}"})
        made.cli("license", "activate", vendor.issue(antivirus=None))
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


def off_the_loop(work, *args, **keywords):
    """Playwright's sync API keeps an event loop running in the test's thread;
    the clamd client's sync calls run one of their own, so they go to another thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args, **keywords).result()


def signature_status(box):
    return off_the_loop(signatures.status, box.data)


def build_cud(work, version: int):
    """An unsigned daily database (.cud) of version `version` holding the MD5
    signature of clamav-testfiles' clam.exe, built by sigtool: ClamAV's
    signed .cvd files cannot be made offline."""
    require("sigtool", "clamav-testfiles")
    work.mkdir(parents=True, exist_ok=True)
    (work / "COPYING").write_text("test signatures\n")
    (work / "daily.hdb").write_text(hdb_line(CLAM_EXE, "Gatebox.Test.ClamExe") + "\n")
    subprocess.run(["sigtool", f"--datadir={work}", "--build=daily.cud", "--unsigned",
                    f"--cvd-version={version}", "--no-cdiff"], cwd=work, input="gatebox-test\n",
                   capture_output=True, text=True, check=True, timeout=120)
    return work / "daily.cud"


def test_each_page_renders_from_the_menu(admin, box, shot):
    page = admin
    for view, title in PAGES:
        page.goto(box.web_url + "/")
        page.click(f"nav.menu a[href='/anti-virus/{view}']")
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator(".softpak-offer")).to_have_count(0)
        shot(page, f"antivirus-{view}")
    page.goto(box.web_url + "/anti-virus/settings")
    expect(page.locator("#memory-figures tr[data-figure=total] td")).to_contain_text("MB")
    expect(page.locator("#scanner-state td[data-state]")).to_have_text("no signatures")


def test_the_settings_are_saved(admin, box, shot):
    page = admin
    page.goto(box.web_url + "/anti-virus/settings")
    expect(page.locator("#antivirus__on_failure-tempfail")).to_be_checked()
    page.select_option("#antivirus__action", "quarantine")
    page.check("#antivirus__on_failure-accept")
    page.check("#antivirus__notify_recipient")
    page.click("button[name=apply]")
    expect(page.locator(".flash.ok")).to_contain_text("Saved: ")
    expect(page.locator("#antivirus__on_failure-accept")).to_be_checked()
    expect(page.locator("#antivirus__action")).to_have_value("quarantine")
    shot(page, "antivirus-settings-saved")
    assert in_store(box, lambda s: (s.get("antivirus.action"), s.get("antivirus.on_failure"),
                                    s.get("antivirus.notify_recipient"))) == \
        ("quarantine", "accept", True)
    box.configure(**{"antivirus.action": "reject", "antivirus.on_failure": "tempfail",
                     "antivirus.notify_recipient": "off"})


def test_an_uploaded_signature_file_changes_the_version_shown(admin, box, shot, tmp_path):
    page = admin
    page.goto(box.web_url + "/anti-virus/signatures")
    expect(page.locator("#signature-version")).to_have_text("none")
    page.set_input_files("#files", str(build_cud(tmp_path / "build-1", 27500)))
    page.click("button[name=import]")
    expect(page.locator(".flash.ok")).to_contain_text("Imported: daily.cud: version 27500")
    expect(page.locator("#signature-version")).to_have_text("27500")
    expect(page.locator("tr[data-file='daily.cud']")).to_be_visible()
    page.set_input_files("#files", str(build_cud(tmp_path / "build-2", 27501)))
    page.click("button[name=import]")
    expect(page.locator("#signature-version")).to_have_text("27501")
    shot(page, "antivirus-signatures-imported")
    # A forged database is refused and changes nothing.
    forged = tmp_path / "daily.cvd"
    forged.write_bytes(b"ClamAV-VDB:not really".ljust(512, b" ") + b"junk")
    page.set_input_files("#files", str(forged))
    page.click("button[name=import]")
    expect(page.locator(".flash.error")).to_contain_text("Nothing was imported: daily.cvd")
    expect(page.locator("#signature-version")).to_have_text("27501")
    assert signature_status(box).signature_version == 27501


@pytest.fixture
def scanning_box(box, tmp_path):
    """Scanning on, with the tiny database (EICAR, clam.exe) beside what the
    box has, and clamd on the box's socket: the box's own clamd when the
    SoftPak starts one as a service, else Debian's clamd started here."""
    tiny = tiny_database(tmp_path / "tiny")
    signatures.import_files(box.data, [tiny], reload=False)
    box.configure(**{"antivirus.enabled": "on"})
    own = None
    if not hasattr(hooks, "gatebox_services"):
        own = off_the_loop(ClamdProcess(tmp_path / "clamd", database_dir=paths.db_dir(box.data),
                                        socket_path=paths.socket_path(box.data)).start)
    wait_until(lambda: signature_status(box).state == "running", timeout=120,
               interval=0.5, what="clamd answering on the box's socket")
    yield box
    box.configure(**{"antivirus.enabled": "off", "antivirus.action": "reject",
                     "antivirus.notify_recipient": "off"})
    if own is not None:
        own.remove()


def test_the_eicar_button_is_rejected_then_quarantined(admin, scanning_box, shot):
    page, box = admin, scanning_box
    page.goto(box.web_url + "/anti-virus/eicar-test")
    expect(page.locator("#scanner-state td[data-state]")).to_have_text("running")
    expect(page.locator("#address")).to_have_value("postmaster@example.com")
    page.click("button[name=send_eicar]")
    outcome = page.locator("#eicar-outcome")
    expect(outcome).to_have_attribute("data-where", "rejected", timeout=60_000)
    expect(page.locator("#eicar-reply")).to_contain_text("554 5.7.1 Message rejected: virus found")
    expect(page.locator("#no-notices")).to_be_visible()
    shot(page, "antivirus-eicar-rejected")
    assert Quarantine(box.data).items() == []

    box.configure(**{"antivirus.action": "quarantine", "antivirus.notify_recipient": "on"})
    # The running smtpd takes the new settings from its watcher; each try is a real send.
    def quarantined():
        page.goto(box.web_url + "/anti-virus/eicar-test")
        page.click("button[name=send_eicar]")
        return page.locator("#eicar-outcome").get_attribute("data-where") == "quarantined"
    wait_until(quarantined, timeout=60, interval=1, what="the new action in force")
    newest = Quarantine(box.data).items(kind="virus")[0]
    expect(page.locator("#eicar-quarantine-id")).to_have_text(newest.id)
    expect(page.locator("#eicar-reply")).to_contain_text("250")
    notices = page.locator("#eicar-notices tr[data-notice]")
    expect(notices.first).to_contain_text("postmaster@example.com")
    shot(page, "antivirus-eicar-quarantined")
