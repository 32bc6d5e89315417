"""Settings forms generated from the declaration: a changed Maximum Message
Size is enforced by the running SMTP server; a bad value shows its rule;
a form posted without its CSRF token is refused."""

import smtplib

import pytest
from playwright.sync_api import expect

from tests.support.net import wait_until

ADVANCED = "/email-server/settings/advanced"


def _send(box, size: int):
    body = ("x" * 76 + "\r\n") * (size // 78 + 1)
    message = f"From: a@example.net\r\nTo: b@example.com\r\nSubject: size\r\n\r\n{body}"
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30) as client:
        client.sendmail("a@example.net", ["b@example.com"], message)


def _advertised_size(box) -> int:
    """The SIZE limit the SMTP server announces in EHLO (RFC 1870)."""
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30) as client:
        client.ehlo("pc.office.lan")
        return int(client.esmtp_features.get("size") or 0)


def test_maximum_message_size_changed_in_page_is_enforced(signed_in, admin_box, sink, shot):
    page = signed_in
    admin_box.configure(**{"email.mail_server_address": sink.address})
    _send(admin_box, 2_000_000)  # 2 MB passes the default 10 MB

    page.goto(admin_box.web_url + ADVANCED)
    expect(page.locator("h1")).to_have_text("Email Server: Settings: Advanced")
    expect(page.locator("#email__max_message_size_mb")).to_have_value("10")
    shot(page, "advanced")
    page.fill("#email__max_message_size_mb", "1")
    page.click("button[name=apply]")
    expect(page.locator(".flash.ok")).to_contain_text("Maximum Message Size (MB)")
    expect(page.locator("#email__max_message_size_mb")).to_have_value("1")

    # Running services reload settings within about a second; the new
    # limit shows in EHLO before any message is tried against it.
    wait_until(lambda: _advertised_size(admin_box) == 1024 * 1024, timeout=15, interval=0.2,
               what="the SMTP server to announce the 1 MB limit")
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as refused:
        _send(admin_box, 2_000_000)
    assert refused.value.smtp_code == 552
    _send(admin_box, 100_000)

    page.goto(admin_box.web_url + "/system/audit")
    row = page.locator("table.audit tr", has_text="set email.max_message_size_mb")
    expect(row).to_contain_text("admin (web)")
    expect(row).to_contain_text("10")


def test_bad_value_shows_its_rule_and_keeps_what_was_typed(signed_in, admin_box, shot):
    page = signed_in
    page.goto(admin_box.web_url + ADVANCED)
    page.fill("#email__max_message_size_mb", "huge")
    page.fill("#email__max_connections_per_host", "7")
    page.click("button[name=apply]")
    field = page.locator(".field", has=page.locator("#email__max_message_size_mb"))
    expect(field.locator(".rule")).to_have_text(
        "must be a whole number from 1 to 2048 or 'unlimited'")
    expect(page.locator("#email__max_message_size_mb")).to_have_value("huge")
    expect(page.locator("#email__max_connections_per_host")).to_have_value("7")
    shot(page, "advanced-refused")
    # Nothing was saved: a form is applied whole or not at all.
    assert admin_box.cli("config", "get", "email.max_connections_per_host").stdout.strip() == "5"


def test_post_without_csrf_token_is_refused(signed_in, admin_box):
    page = signed_in
    response = page.request.post(admin_box.web_url + ADVANCED,
                                 form={"email__max_message_size_mb": "3"})
    assert response.status == 400
    assert "CSRF" in response.text()
    assert admin_box.cli("config", "get", "email.max_message_size_mb").stdout.strip() == "10"


def test_relay_only_fields_follow_server_type(signed_in, admin_box, licensed, shot):
    page = signed_in
    page.goto(admin_box.web_url + "/email-server/settings")
    expect(page.locator("#email__mail_server_address")).to_be_visible()
    # Without the Mail Server SoftPak the other server types are refused by name.
    page.select_option("#email__server_type", "standalone")
    expect(page.locator("#email__mail_server_address")).to_be_hidden()
    page.click("button[name=apply]")
    expect(page.locator(".field", has=page.locator("#email__server_type")).locator(".rule")) \
        .to_contain_text("needs the Mail Server SoftPak")

    licensed(admin_box.data, mailserver=None)
    page.goto(admin_box.web_url + "/email-server/settings")
    # The types that fetch from the ISP show the ISP's fields.
    page.select_option("#email__server_type", "multidrop")
    expect(page.locator("#email__isp_server")).to_be_visible()
    expect(page.locator("#email__envelope_header")).to_be_visible()
    page.select_option("#email__server_type", "etrn")
    expect(page.locator("#email__etrn_form")).to_be_visible()
    expect(page.locator("#email__isp_login")).to_be_hidden()
    page.select_option("#email__server_type", "standalone")
    expect(page.locator("#email__mail_server_address")).to_be_hidden()
    page.click("button[name=apply]")
    expect(page.locator(".flash.ok")).to_contain_text("Server Type")
    page.goto(admin_box.web_url + ADVANCED)
    expect(page.locator("#email__max_retrieve_per_session")).to_be_hidden()
    shot(page, "advanced-standalone")
    page.goto(admin_box.web_url + "/email-server/settings")
    page.select_option("#email__server_type", "relay")
    expect(page.locator("#email__mail_server_address")).to_be_visible()
