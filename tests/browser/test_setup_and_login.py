"""First-boot setup, sign-in, sign-out and the guessing lockout, in a real browser."""

from playwright.sync_api import expect

from tests.support.licensing import BOX_SERIAL

from .conftest import ADMIN_PASSWORD, sign_in


def setup_code(box) -> str:
    """A fresh one-time setup code, as the office reads it off the console."""
    return box.cli("setup-code").stdout.strip().rsplit(" ", 1)[-1]


def test_first_boot_setup_is_the_only_page_until_done(page, web_box, shot):
    web_box.start()
    for path in ("/", "/system/audit", "/email-server/settings/advanced"):
        page.goto(web_box.web_url + path)
        expect(page.locator("h1")).to_have_text("First-time setup")
    expect(page.locator("#serial")).to_have_text(BOX_SERIAL)
    shot(page, "setup")

    page.fill("#setup_code", "2345-6789-ABCD")
    page.fill("#password", "short")
    page.fill("#confirm", "short")
    page.fill("#email__domain", "office.example")
    page.click("button[name=finish]")
    expect(page.locator("#setup_code-rule")).to_contain_text("does not match")
    expect(page.locator(".field.invalid .rule").nth(1)).to_contain_text("at least 8 characters")
    expect(page.locator("#email__domain")).to_have_value("office.example")  # kept as typed
    shot(page, "setup-refused")

    page.fill("#setup_code", setup_code(web_box))
    page.fill("#password", ADMIN_PASSWORD)
    page.fill("#confirm", ADMIN_PASSWORD)
    page.click("button[name=finish]")
    expect(page.locator("h1")).to_have_text("Dashboard")
    shot(page, "dashboard")
    assert web_box.cli("config", "get", "email.domain").stdout.strip() == "office.example"

    page.goto(web_box.web_url + "/setup")  # done once, setup is gone
    expect(page.locator("h1")).to_have_text("Dashboard")
    page.goto(web_box.web_url + "/system/audit")
    expect(page.locator("table.audit")).to_contain_text("add user admin")
    expect(page.locator("table.audit")).to_contain_text("setup (web)")


def test_guessing_locks_this_client_out_even_with_the_right_password(page, admin_box, shot):
    admin_box.start()
    page.goto(admin_box.web_url + "/email-server/settings")
    expect(page.locator("h1")).to_have_text("Sign in")
    shot(page, "login")

    for _ in range(5):
        sign_in(page, admin_box, password="wrong password")
        expect(page.locator(".flash.error").first).to_contain_text("Wrong login name or password")
    # The fifth failure locks this client, and the page says so ...
    expect(page.locator(".flash.error").nth(1)).to_contain_text("Sign-in locked")
    # ... and now even the right password is refused.
    sign_in(page, admin_box)
    expect(page.locator(".flash.error")).to_contain_text("Sign-in refused")
    expect(page.locator("h1")).to_have_text("Sign in")
    shot(page, "login-locked")
    locks = admin_box.cli("user", "locks").stdout
    assert "client 127.0.0.1: 5 failed web logins" in locks


def test_sign_in_and_sign_out(page, admin_box, shot):
    admin_box.start()
    page.goto(admin_box.web_url + "/email-server/settings")
    expect(page.locator("h1")).to_have_text("Sign in")
    sign_in(page, admin_box)
    expect(page.locator("h1")).to_have_text("Dashboard")

    cookie = next(c for c in page.context.cookies() if c["name"] == "__Host-gatebox")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    page.click("button:has-text('Sign out')")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.goto(admin_box.web_url + "/system/audit")
    expect(page.locator("h1")).to_have_text("Sign in")
