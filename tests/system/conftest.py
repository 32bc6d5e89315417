"""A booted gatebox image under QEMU, one per test module, driven only from
outside through its forwarded loopback ports (qemu/boot.py)."""

from __future__ import annotations

import contextlib
import imaplib
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support import chromium
from tests.support.net import free_port
from tests.support.sink import SmtpSink
from tests.support.tools import require

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "qemu"))
import boot  # noqa: E402

ARTIFACTS = TOP / "test-artifacts" / "system"
# The guest reaches the host's loopback at this address (QEMU user networking).
HOST_FROM_GUEST = "10.0.2.2"
ADMIN_PASSWORD = "office admin 2026"
# The services answer in a 256 MB guest (bench/image.py reports it), but
# under software emulation Dovecot's logins (a Python password check each)
# beside the services make a 256 MB guest thrash; the tests use real-box RAM.
MEMORY_MB = 512


def image_or_fail(arch: str = "x86_64") -> Path:
    image = boot.image_path(arch)
    assert image.exists(), f"{image} is missing: `make image` builds it (`make test` does)"
    require("qemu-system-x86_64" if arch == "x86_64" else "qemu-system-aarch64", "qemu-img")
    return image


def smtp_banner(port: int, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        return sock.recv(512)


class Sink:
    """A smtp-sink that the tests stop and start again."""

    def __init__(self, directory):
        self.port, self.directory, self.sink = free_port(), directory, None
        self.start()

    def start(self):
        self.sink = SmtpSink(self.directory, port=self.port).start()

    def stop(self):
        self.sink.stop()

    def has(self, subject: str) -> bool:
        return any(f"Subject: {subject}".encode() in m for m in self.sink.messages())


@pytest.fixture(scope="module")
def lan(tmp_path_factory):
    """The office's mail server on the LAN, for the module's box."""
    sink = Sink(tmp_path_factory.mktemp("lan-server"))
    yield sink
    sink.stop()


def send(box, subject: str, recipient: str):
    message = EmailMessage()
    message["From"] = "alice@internet.test" if recipient.endswith("@example.com") else "bob@example.com"
    message["To"] = recipient
    message["Subject"] = subject
    message.set_content(f"{subject}\n")
    with smtplib.SMTP("127.0.0.1", box.ports["smtp"], timeout=60) as client:
        client.ehlo("client.test")
        assert client.send_message(message) == {}


def console_text(box) -> str:
    return box.console().decode(errors="replace")


def setup_code(box) -> str:
    """The one-time setup code the box printed on its serial console at its
    latest boot (the gatebox-setup-code unit), as an office reads it off."""
    codes = re.findall(r"gatebox setup code: ([0-9A-Z-]+)", console_text(box))
    assert codes, "no setup code on the serial console: " + console_text(box)[-3000:]
    return codes[-1]


def finish_first_boot_setup(page, box, admin_url: str):
    """First-time setup through the page: the console's code and the password."""
    page.goto(admin_url + "/")
    expect(page.locator("h1")).to_have_text("First-time setup")
    page.fill("#setup_code", setup_code(box))
    page.fill("#password", ADMIN_PASSWORD)
    page.fill("#confirm", ADMIN_PASSWORD)
    page.click("button[name=finish]")
    expect(page.locator("h1")).to_have_text("Dashboard")


def sign_in(page, admin_url: str):
    """Signs the administrator in through the login page."""
    page.goto(admin_url + "/login")
    page.fill("#name", "admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button:has-text('Sign in')")
    expect(page.locator("h1")).to_have_text("Dashboard")


def add_user(page, admin_url: str, name: str, password: str):
    """Users & Groups > Users: adds a user with the password."""
    page.goto(admin_url + "/users-groups/users")
    page.fill("#add-name", name)
    page.fill("#add-password", password)
    page.fill("#add-confirm", password)
    page.click("button.primary:has-text('Apply')")
    expect(page.locator("table")).to_contain_text(name)


def expect_licensed(page, admin_url: str, softpak: str):
    """System > Licenses shows the SoftPak licensed and running."""
    page.goto(admin_url + "/system/licenses")
    cells = page.locator(f"tr[data-softpak={softpak}] td")
    expect(cells.nth(1)).to_have_text("yes")
    expect(cells.nth(2)).to_have_text("yes")


def issue_license(serial: str, *softpaks: str) -> str:
    """A key for this serial, signed with the development key the image
    trusts (made by `make image` in build/keys/, never committed)."""
    key = TOP / "build" / "keys" / "vendor-dev.key"
    assert key.exists(), f"{key} is missing: `make image` makes it"
    command = [sys.executable, "-m", "gatebox_vendor.cli", "issue", "--key", str(key),
               "--serial", serial] + [f"--softpak={s}" for s in softpaks]
    issued = subprocess.run(command, capture_output=True, text=True, check=True)
    return issued.stdout.strip().splitlines()[-1]


def _any_certificate() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE   # the box's own self-signed certificate
    return context


@contextlib.contextmanager
def imap_inbox(port: int, user: str, password: str, implicit_tls: bool = False,
               timeout: float = 60):
    """An IMAP session logged in with its INBOX selected (read-only), over
    STARTTLS (the box takes passwords only over TLS from the LAN) or over
    IMAP4 over SSL."""
    context = _any_certificate()
    if implicit_tls:
        client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context, timeout=timeout)
    else:
        client = imaplib.IMAP4("127.0.0.1", port, timeout=timeout)
    with client:
        if not implicit_tls:
            client.starttls(ssl_context=context)
        client.login(user, password)
        client.select("INBOX", readonly=True)
        yield client


def imap_messages(port: int, user: str, password: str, implicit_tls: bool = False) -> list[bytes]:
    """Every message in the user's INBOX; [] while it cannot log in."""
    try:
        with imap_inbox(port, user, password, implicit_tls) as client:
            _, numbers = client.search(None, "ALL")
            messages = []
            for number in numbers[0].split():
                _, data = client.fetch(number, "(RFC822)")
                messages.append(data[0][1])
            return messages
    except (OSError, imaplib.IMAP4.error):
        return []


def imap_login_storm(port: int, logins: list[tuple[str, str]]) -> list[tuple[bool, float, str]]:
    """One IMAP session for each (user, password) of LOGINS, each STARTTLS,
    LOGIN, SELECT INBOX and LOGOUT, all started at the same moment:
    (succeeded, seconds, the error or "") for each. Dovecot takes at most 10
    sessions of one user from one address (mail_max_userip_connections), so
    a storm from one address names several users, as an office's would.

    The connections are opened one after another, each up to its greeting,
    and only then do the twenty logins (the TLS handshakes and password
    checks, the storm's cost) start together. QEMU's user networking
    listens on a forwarded port with a backlog of one: twenty connects at
    once overflow the host's accept queue, and a connection whose handshake
    the host kernel then drops is one the client thinks open, waiting for a
    greeting that never comes. A LAN's NIC has no such queue of one."""
    results = [(False, 0.0, "not run")] * len(logins)
    clients: list = [None] * len(logins)
    for index in range(len(logins)):
        try:
            clients[index] = imaplib.IMAP4("127.0.0.1", port, timeout=120)
        except (OSError, imaplib.IMAP4.error) as error:
            results[index] = (False, 0.0, f"greeting: {type(error).__name__}: {error}")
    start = threading.Barrier(len(logins))

    def one(index: int):
        start.wait()
        client = clients[index]
        if client is None:
            return
        began = time.monotonic()
        try:
            with client:
                client.starttls(ssl_context=_any_certificate())
                client.login(*logins[index])
                client.select("INBOX", readonly=True)
            results[index] = (True, time.monotonic() - began, "")
        except (OSError, imaplib.IMAP4.error) as error:
            results[index] = (False, time.monotonic() - began, f"{type(error).__name__}: {error}")
    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(logins))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return results


@pytest.fixture(scope="package")
def playwright():
    with chromium.driver() as driver:
        yield driver


@pytest.fixture
def page(playwright, tmp_path):
    """A fresh browser profile per test; pages of an emulated box are slow."""
    context = chromium.launch(playwright, tmp_path / "chromium-profile", timeout_ms=90_000)
    yield context.pages[0] if context.pages else context.new_page()
    context.close()


@pytest.fixture
def shot(request):
    """shot(page, "name"): a full-page screenshot kept as a test artifact."""
    return chromium.screenshot_taker(request, ARTIFACTS)


@pytest.fixture(scope="module")
def machine_factory(request, tmp_path_factory):
    """Makes booted machines for the module; keeps each serial console as a
    test artifact and powers the machines off at the end."""
    image = image_or_fail()
    machines = []

    def make(name: str = "box", seed: dict | None = None) -> boot.Machine:
        workdir = tmp_path_factory.mktemp(name)
        machine = boot.Machine(workdir, image=image, seed=seed, memory_mb=MEMORY_MB)
        machines.append((name, machine))
        return machine.start_first_boot()

    yield make
    module = request.module.__name__.rsplit(".", 1)[-1]
    for name, machine in machines:
        machine.stop()
        target = ARTIFACTS / module
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(machine.console_path, target / f"{name}-console.log")
        for stalled in machine.workdir.glob("console-stalled-*.log"):
            shutil.copyfile(stalled, target / f"{name}-{stalled.name}")
        machine.data_journal(target / f"{name}-journal.log")
