"""Pulling the plug never bricks the box nor loses accepted mail. One box,
its power cut (QEMU killed with SIGKILL: no shutdown, nothing the guest had
not flushed survives) at four moments chosen on the serial console:

1. during the first boot's writes: `gatebox init` has just made the
   database, the certificate and the queue, before the seed and the marker;
2. just after the first boot: the health check has just said it is good;
3. while mail is being received, with the LAN server down so it all waits
   in the queue;
4. in the middle of the boot after that: the services are starting, the
   queue they recover full of that mail.

The boot after each of the first two cuts and after the last must answer
SMTP and HTTPS (the health check's line, and our own look; the boot after
the third is the one cut in the middle), and the last one delivers every
message that got 250 to the LAN server named in the factory seed: the queue
and the settings survived. Five boots, two of them cut short: each costs a
minute or two under software emulation."""

from __future__ import annotations

import re
import shutil
import smtplib
import socket
import ssl
import threading
import time
from email.message import EmailMessage

import pytest

from tests.support.net import wait_for_banner, wait_until

from .conftest import ARTIFACTS, HOST_FROM_GUEST, boot, console_text

pytestmark = pytest.mark.timeout(1500)
BOOT_SECONDS = 600
DELIVERY_SECONDS = 240
ACKNOWLEDGED_BEFORE_CUT = 3

INIT_DONE = re.compile(rb"first-boot\[\d+\]: initialised /data")
# systemd's status line for the services is not always on the console; the
# USB watcher starts beside them, and `gatebox run` prints the setup code
# while no administrator exists.
SERVICES_STARTING = re.compile(rb"Started \S*gatebox-(services|usb)|gatebox setup code")
HEALTH_GOOD = re.compile(rb"gatebox-health: boot good")


def wait_for_console(machine, pattern: re.Pattern, timeout: float = BOOT_SECONDS):
    """Polls the serial console closely: the cut should land right after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pattern.search(machine.console()):
            return
        if machine.process.poll() is not None:
            raise AssertionError(f"QEMU exited before {pattern.pattern!r}")
        time.sleep(0.05)
    raise TimeoutError(f"{pattern.pattern!r} not on the console within {timeout:.0f}s")


class PowerSwitch:
    """Cuts the power and switches it on again, keeping each boot's console."""

    def __init__(self, machine):
        self.machine = machine
        self.boots = 1

    def cut(self):
        self.machine.process.kill()
        self.machine.process.wait(10)
        self._keep_console()

    def on(self, attempts: int = 3, stall_seconds: float = 240.0):
        """Power on, keeping /data. Software emulation now and then stalls
        for good before userspace (qemu/boot.py, start_first_boot); then the
        power is cut once more, which is what this test does anyway."""
        for _attempt in range(attempts):
            self.boots += 1
            self.machine.start(fresh=False)
            deadline = time.monotonic() + stall_seconds
            while time.monotonic() < deadline:
                if boot.USERSPACE_START in self.machine.console():
                    return
                time.sleep(1)
            self.cut()
        raise TimeoutError(f"the kernel never reached userspace in {attempts} power-ons")

    def _keep_console(self):
        ARTIFACTS.joinpath("test_power_cuts").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.machine.console_path,
                        ARTIFACTS / "test_power_cuts" / f"boot-{self.boots}-console.log")

    def healthy(self) -> str:
        """The health check's line for this boot (it fails on 'NOT good'),
        and SMTP and HTTPS seen answering from outside."""
        line = self.machine.wait_healthy(BOOT_SECONDS, boot=1)
        assert "smtp=ok https=ok" in line, line
        wait_for_banner("127.0.0.1", self.machine.ports["smtp"], timeout=60)
        assert https_status_line(self.machine.ports["https"]).startswith(b"HTTP/1")
        assert "PEM lib" not in console_text(self.machine)
        return line


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the box's own self-signed certificate
    return context


def https_status_line(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        with _unverified().wrap_socket(raw) as sock:
            sock.sendall(b"GET /login HTTP/1.0\r\nHost: gatebox\r\n\r\n")
            return sock.recv(64)


def https_certificate(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        with _unverified().wrap_socket(raw) as sock:
            return sock.getpeercert(binary_form=True)


class MailStream:
    """One client sending numbered messages to bob@example.com, one after
    another, until told to stop; remembers the ones that got 250."""

    def __init__(self, port: int):
        self.port = port
        self.acknowledged: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        number = 0
        while not self.stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=30,
                                  local_hostname="pc.office.lan") as client:
                    while not self.stop.is_set():
                        number += 1
                        subject = f"power cut stream {number}"
                        message = EmailMessage()
                        message["From"] = "alice@internet.test"
                        message["To"] = "bob@example.com"
                        message["Subject"] = subject
                        message.set_content(f"{subject}\n")
                        client.send_message(message)
                        self.acknowledged.append(subject)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.2)


def test_power_cuts_never_brick_the_box_nor_lose_queued_mail(machine_factory, lan):
    lan.stop()  # all mail waits in the box's queue until the very end
    machine = machine_factory("power-cuts", seed={
        "email.domain": "example.com",
        "email.mail_server_address": f"{HOST_FROM_GUEST}:{lan.port}",
        "email.retry_minimum_seconds": "5",
        "email.retry_maximum_seconds": "10",
    })
    power = PowerSwitch(machine)

    # 1. During the first boot's writes.
    wait_for_console(machine, INIT_DONE)
    power.cut()
    power.on()
    power.healthy()
    assert "gatebox-firstboot: /data initialised" in console_text(machine), \
        "the interrupted first boot was not completed on the next one"
    # Made (or made again) by now; no later cut may damage it or have it replaced.
    certificate = https_certificate(machine.ports["https"])

    # 2. Just after the first boot (the services have just come up).
    power.cut()
    power.on()
    power.healthy()

    # 3. While mail is being received.
    stream = MailStream(machine.ports["smtp"])
    stream.thread.start()
    wait_until(lambda: len(stream.acknowledged) >= ACKNOWLEDGED_BEFORE_CUT, DELIVERY_SECONDS,
               0.05, "mail accepted before the cut")
    power.cut()
    stream.stop.set()
    stream.thread.join(60)
    accepted = list(stream.acknowledged)
    power.on()

    # 4. In the middle of the next boot.
    wait_for_console(machine, SERVICES_STARTING)
    power.cut()
    power.on()
    power.healthy()

    # The seed's LAN server (a setting) gets every message that got 250.
    lan.start()
    missing = lambda: [s for s in accepted if not lan.has(s)]  # noqa: E731
    wait_until(lambda: not missing(), DELIVERY_SECONDS, 1,
               f"delivery of the {len(accepted)} accepted messages")
    assert https_certificate(machine.ports["https"]) == certificate
    power.cut()  # the last console is kept too; the fixture finds the machine off
