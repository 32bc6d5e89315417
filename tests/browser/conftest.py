"""Browser tests: Debian's Chromium driven by Playwright against a real
`gatebox run --http-port` (gunicorn, HTTPS with the box's self-signed
certificate) on loopback. Playwright's own browser downloads are never used."""

from __future__ import annotations

from pathlib import Path

import playwright.sync_api as playwright_api
import pytest

from tests.support import chromium
from tests.support.box import Box
from tests.support.net import free_port
from tests.support.tools import require

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_PASSWORD = "correct horse battery"

@pytest.fixture(scope="session", autouse=True)
def browser_tools():
    require("chromium", "playwright driver", "smtp-sink")


@pytest.fixture(scope="package")
def playwright():
    with chromium.driver() as driver:
        yield driver


@pytest.fixture
def browser(playwright, tmp_path):
    """A fresh Chromium profile for each test, so no cookie leaks between tests."""
    context = chromium.launch(playwright, tmp_path / "chromium-profile")
    yield context
    context.close()


@pytest.fixture
def page(browser):
    return browser.pages[0] if browser.pages else browser.new_page()


@pytest.fixture
def shot(request):
    """shot(page, "name"): a full-page screenshot kept as a test artifact."""
    return chromium.screenshot_taker(request, ARTIFACTS)


@pytest.fixture
def web_box(tmp_path, box_serial, vendor):
    """A box with its web admin, no administrator yet (first boot), and its
    LAN mail server pointing at a closed port unless a test changes it."""
    box = Box(tmp_path / "box", web=True,
              settings={"email.mail_server_address": f"127.0.0.1:{free_port()}"})
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
