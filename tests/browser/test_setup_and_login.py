"""First-boot setup, sign-in and the sign-in slowdown, in a real browser."""

from playwright.sync_api import expect

from tests.support.licensing import BOX_SERIAL

from .conftest import ADMIN_PASSWORD, sign_in


def test_first_boot_setup_is_the_only_page_until_done(page, web_box, shot):
    web_box.start()
    for path in ("/", "/system/audit", "/email-server/settings/advanced"):
        page.goto(web_box.web_url + path)
        expect(page.locator("h1")).to_have_text("First-time setup")
    expect(page.locator("#serial")).to_have_text(BOX_SERIAL)
    shot(page, "setup")

    page.fill("#password", "short")
    page.fill("#confirm", "short")
    page.fill("#email__domain", "office.example")
    page.click("button[name=finish]")
    expect(page.locator(".field.invalid .rule")).to_contain_text("at least 8 characters")
    expect(page.locator("#email__domain")).to_have_value("office.example")  # kept as typed
    shot(page, "setup-refused")

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


def test_sign_in_sign_out_and_slowdown(page, admin_box, shot):
    admin_box.start()
    page.goto(admin_box.web_url + "/email-server/settings")
    expect(page.locator("h1")).to_have_text("Sign in")
    shot(page, "login")

    # Three wrong passwords (attempts made while the box says "wait" do not count) ...
    wrong = 0
    while wrong < 3:
        sign_in(page, admin_box, password="wrong password")
        message = page.locator(".flash.error").inner_text()
        if "Wrong login name or password" in message:
            wrong += 1
        else:
            assert "Too many failed sign-ins" in message
            page.wait_for_timeout(300)
    # ... and now the box makes this client wait 4 seconds, even for the right one.
    sign_in(page, admin_box)
    expect(page.locator(".flash.error")).to_contain_text("Too many failed sign-ins")
    shot(page, "login-slowed")
    page.wait_for_timeout(4100)
    sign_in(page, admin_box)
    expect(page.locator("h1")).to_have_text("Dashboard")

    cookie = next(c for c in page.context.cookies() if c["name"] == "__Host-gatebox")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    page.click("button:has-text('Sign out')")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.goto(admin_box.web_url + "/system/audit")
    expect(page.locator("h1")).to_have_text("Sign in")
