"""Debian's Chromium under Playwright, as the browser and system tests use
it. Playwright's own browser downloads are never used."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from playwright.sync_api import sync_playwright

from .tools import require

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def driver():
    """Playwright for a test package. Package scope, because Playwright's event
    loop must be gone before other test packages run asyncio code of their own."""
    require("chromium", "playwright driver")
    with sync_playwright() as running:
        yield running


def launch(driver, profile: Path, timeout_ms: int = 15_000):
    """A persistent context in a fresh profile; it accepts the box's
    self-signed certificate."""
    context = driver.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=ARGS,
        ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(timeout_ms)
    return context


def screenshot_taker(request, directory: Path):
    """take(page, "name"): a full-page screenshot named after the test."""
    directory.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)

    def take(page, name: str):
        page.screenshot(path=str(directory / f"{test}--{name}.png"), full_page=True)
    return take
