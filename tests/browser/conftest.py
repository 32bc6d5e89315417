"""Browser tests: Debian's Chromium driven by Playwright against a real
`gatebox run --http-port` (gunicorn, HTTPS with the box's self-signed
certificate) on loopback. Playwright's own browser downloads are never used."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import playwright.sync_api as playwright_api
import pytest

from tests.support.box import Box
from tests.support.net import free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ADMIN_PASSWORD = "correct horse battery"

@pytest.fixture(scope="package")
def playwright():
    # Package scope: Playwright's event loop must be gone before other test
    # packages run asyncio code of their own.
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing (make test installs Debian's chromium)"
    with playwright_api.sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright, tmp_path):
    """A fresh Chromium profile for each test, so no cookie leaks between tests."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
        args=CHROMIUM_ARGS, ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(browser):
    return browser.pages[0] if browser.pages else browser.new_page()


@pytest.fixture
def shot(request):
    """shot(page, "name"): a full-page screenshot in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)

    def take(page, name: str):
        page.screenshot(path=str(ARTIFACTS / f"{test}--{name}.png"), full_page=True)
    return take


@pytest.fixture
def web_box(tmp_path, box_serial, vendor):
    """A box with its web admin, no administrator yet (first boot), and its
    LAN mail server pointing at a closed port unless a test changes it."""
    box = Box(tmp_path / "box", web=True)
    box.configure(**{"email.mail_server_address": f"127.0.0.1:{free_port()}"})
    yield box
    box.stop()


@pytest.fixture
def admin_box(web_box):
    web_box.cli("user", "add", "admin", "--admin", "--password", ADMIN_PASSWORD)
    return web_box


def sign_in(page, box, password: str = ADMIN_PASSWORD):
    page.goto(box.web_url + "/login")
    page.fill("#name", "admin")
    page.fill("#password", password)
    page.click("button:has-text('Sign in')")


@pytest.fixture
def signed_in(page, admin_box):
    admin_box.start()
    sign_in(page, admin_box)
    playwright_api.expect(page.locator("h1")).to_have_text("Dashboard")
    return page
