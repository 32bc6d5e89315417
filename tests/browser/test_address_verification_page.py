"""Email Server > Address Verification in Chromium: the fields follow the
Server Type and the Enable SPF checkbox without a reload, a bad LDAP Server
is refused with its rule, Update Now reads a real slapd and shows what
happened, and the Test box answers from the running checks."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.support.slapd import LdapServer

PAGE = "/email-server/address-verification"
SETTINGS = "/email-server/settings"
RELAY_ONLY = ("#email__verify_recipient_smtp", "#email__verify_recipient_ldap",
              "#email__ldap_domain", "#email__ldap_server", "#email__ldap_security",
              "#email__ldap_auth", "#email__ldap_refresh", "#email__internal_addresses")
UNADDRESSABLE = "#mailserver__unaddressable"
SPF_BYPASS = "#email__spf_bypass"
LDAP_SERVER_RULE = ("must be a host name or IP address, optionally with :port, "
                    "or ldap://host[:port] or ldaps://host[:port]")


@pytest.fixture
def admin(page, admin_box):
    """Signed in on a running box. Waits for the dashboard's address, not its
    heading, so these tests are about this page alone."""
    admin_box.start()
    sign_in(page, admin_box)
    expect(page).to_have_url(admin_box.web_url + "/")
    return page


def _setting(box, key: str) -> str:
    return box.cli("config", "get", key).stdout.strip()


def _field(page, selector: str):
    return page.locator(".field", has=page.locator(selector))


def _open(page, box):
    page.goto(box.web_url + PAGE)
    expect(page.locator("h1")).to_have_text("Email Server: Address Verification")


def test_fields_follow_server_type_and_spf_checkbox(admin, admin_box, licensed, shot):
    page = admin
    licensed(admin_box.data, mailserver=None)
    _open(page, admin_box)
    for selector in RELAY_ONLY:
        expect(page.locator(selector)).to_be_visible()
    expect(page.locator(UNADDRESSABLE)).to_be_hidden()

    # The bypass belongs to SPF: it appears and goes with the checkbox, no reload.
    expect(page.locator("#email__spf")).not_to_be_checked()
    expect(page.locator(SPF_BYPASS)).to_be_hidden()
    page.check("#email__spf")
    expect(page.locator(SPF_BYPASS)).to_be_visible()
    shot(page, "relay-spf-on")
    page.uncheck("#email__spf")
    expect(page.locator(SPF_BYPASS)).to_be_hidden()

    page.goto(admin_box.web_url + SETTINGS)
    page.select_option("#email__server_type", "standalone")
    page.click("button[name=apply]")
    expect(page.locator(".flash.ok")).to_contain_text("Server Type")
    assert _setting(admin_box, "email.server_type") == "standalone"

    _open(page, admin_box)
    for selector in RELAY_ONLY:
        expect(page.locator(selector)).to_be_hidden()
    expect(page.locator(UNADDRESSABLE)).to_be_visible()
    # Server-side rendering agrees with the script: the rows carry `hidden`.
    expect(_field(page, "#email__ldap_server")).to_have_attribute("hidden", "")
    shot(page, "standalone")


@pytest.mark.parametrize("bad", ["http://dc1", "dc 1"])
def test_bad_ldap_server_is_refused_with_its_rule_and_the_rest_kept(admin, admin_box, bad):
    page = admin
    _open(page, admin_box)
    page.check("#email__verify_recipient_ldap")
    page.fill("#email__ldap_domain", "example.com")
    page.fill("#email__ldap_server", bad)
    page.fill("#email__internal_addresses", "jane@example.com")
    page.click("button[name=apply]")

    expect(page.locator(".flash.error[role=alert]")).to_contain_text("Nothing was saved")
    expect(_field(page, "#email__ldap_server").locator(".rule")).to_have_text(LDAP_SERVER_RULE)
    expect(page.locator("#email__ldap_server")).to_have_value(bad)
    expect(page.locator("#email__ldap_domain")).to_have_value("example.com")
    expect(page.locator("#email__internal_addresses")).to_have_value("jane@example.com")
    expect(page.locator("#email__verify_recipient_ldap")).to_be_checked()
    # A form is applied whole or not at all.
    assert _setting(admin_box, "email.ldap_server") == ""
    assert _setting(admin_box, "email.ldap_domain") == ""
    assert _setting(admin_box, "email.internal_addresses") == ""
    assert _setting(admin_box, "email.verify_recipient_ldap") == "off"


def test_update_now_reads_slapd_and_keeps_the_count_when_it_is_down(admin, admin_box,
                                                                    tmp_path, shot):
    page = admin
    directory = LdapServer(tmp_path / "slapd", anonymous=True).start()
    try:
        admin_box.configure(**{"email.ldap_server": directory.address,
                               "email.ldap_security": "none",
                               "email.ldap_domain": "example.com",
                               "email.verify_recipient_ldap": "on"})
        _open(page, admin_box)
        page.click("button[name=update_now]")
        # jane@ and j.doe@ (AD proxyAddresses of type SMTP) and bob@ (mail).
        expect(page.locator(".flash.ok")).to_have_text("Read 3 addresses from the LDAP server.")
        expect(page.locator("[data-ldap-count]")).to_have_text("3")
        expect(page.locator("#av-ldap + p time")).to_have_text(
            re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
        expect(page.locator("[data-ldap-error]")).to_have_count(0)

        # Update Now reads the directory again at once (the refresh interval is an hour).
        directory.add_person("Carol Jones", "carol@example.com")
        page.click("button[name=update_now]")
        expect(page.locator(".flash.ok")).to_have_text("Read 4 addresses from the LDAP server.")
        expect(page.locator("[data-ldap-count]")).to_have_text("4")
    finally:
        directory.stop()

    page.click("button[name=update_now]")
    expect(page.locator(".flash.error[role=status]")).to_contain_text(
        "The LDAP address list was not read")
    expect(page.locator("[data-ldap-error]")).to_contain_text("failed")
    # The list read before stays in force, and the page says how many it holds.
    expect(page.locator("[data-ldap-count]")).to_have_text("4")
    shot(page, "ldap-down")

    page.goto(admin_box.web_url + "/system/audit")
    updates = page.locator("table.audit tr", has_text="LDAP address list update")
    expect(updates).to_have_count(3)
    expect(updates.first).to_contain_text("admin (web)")


def test_test_box_answers_from_the_recipient_list(admin, admin_box, shot):
    page = admin
    admin_box.configure(**{"email.internal_addresses": "jane@example.com"})
    _open(page, admin_box)

    page.fill("#address", "nobody@example.com")
    page.click("button[name=test]")
    expect(page.locator("table[data-test-results]")).to_be_visible()
    row = page.locator("tr[data-check=verify_recipient]")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(2)).to_contain_text("550 5.1.1")
    shot(page, "test-unknown")

    page.fill("#address", "jane@example.com")
    page.click("button[name=test]")
    expect(page.locator("tr[data-check=verify_recipient] td").nth(2)).to_have_text("accept")

    page.fill("#client_ip", "300.1.2.3")
    page.click("button[name=test]")
    expect(page.locator("#av-test ~ form .flash.error[role=alert]")).to_contain_text(
        "must be an IPv4 or IPv6 address")
    expect(page.locator("[data-test-results]")).to_have_count(0)
    expect(page.locator("#address")).to_have_value("jane@example.com")
