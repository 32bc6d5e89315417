"""Support & Diagnostics > Email Diagnostics in Chromium against a running
box: Run starts the checks and each row fills in as its check finishes. The
LAN mail server is a real socket on loopback that holds its greeting until
the test lets it go, so the other rows are seen done while that one is still
running; what it then says (markup included) is shown as text."""

from __future__ import annotations

import re
import socketserver
import threading

import pytest
from playwright.sync_api import expect

from tests.support.net import free_port, wait_until

PAGE = "/support/email-diagnostics/"
GREETING = "lan.test <b>held</b> ESMTP"


class HeldSmtpServer:
    def __init__(self):
        self.release = threading.Event()
        self.connections = 0
        held = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                held.connections += 1
                if not held.release.wait(30):
                    return
                self.wfile.write(f"220 {GREETING}\r\n".encode())
                for line in self.rfile:
                    if line.upper().startswith(b"QUIT"):
                        self.wfile.write(b"221 bye\r\n")
                        return
                    self.wfile.write(b"250 ok\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def held_lan_server():
    server = HeldSmtpServer().start()
    yield server
    server.stop()


def test_run_shows_results_as_they_arrive(signed_in, admin_box, held_lan_server, shot):
    page = signed_in
    # DNS at a port nothing answers: those rows fail on their own time budget.
    admin_box.configure(**{"email.mail_server_address": held_lan_server.address,
                           "dns.nameservers": "127.0.0.1", "dns.port": str(free_port())})
    page.goto(admin_box.web_url + "/support/")
    page.click("nav.menu a:has-text('Email Diagnostics')")
    expect(page.locator("h1")).to_have_text("Support & Diagnostics: Email Diagnostics")
    page.click("#run-diagnostics")
    expect(page).to_have_url(re.compile(re.escape(admin_box.web_url + PAGE) +
                                        r"\?job=[0-9a-f]{16}"))

    wait_until(lambda: held_lan_server.connections >= 1, timeout=10,
               what="the LAN server check to connect")
    expect(page.locator("#check-certificate .status")).to_have_text("pass")
    expect(page.locator("#check-relay_smtp .status")).to_have_text("pass")
    expect(page.locator("#check-resolver .status")).to_have_text("fail", timeout=15000)
    expect(page.locator("#check-resolver .fix")).to_contain_text("DNS Servers")
    # Still waiting on the held greeting, while the others are done.
    expect(page.locator("#check-lan_smtp .status")).to_have_text("running")
    expect(page.locator("#diagnostics-state")).to_have_text("Running…")
    shot(page, "email-diagnostics-running")

    held_lan_server.release.set()
    expect(page.locator("#check-lan_smtp .status")).to_have_text("pass")
    expect(page.locator("#check-lan_smtp .reason")).to_contain_text(GREETING)
    expect(page.locator("#check-lan_smtp b")).to_have_count(0)
    expect(page.locator("#diagnostics-state")).to_have_text(
        re.compile(r"Finished: \d+ failed, \d+ warnings\."))
    shot(page, "email-diagnostics-done")
