"""The Mail Server SoftPak's Users & Groups pages on a licensed stand-alone
box: Groups, Aliases, Auto-Responders, Distribution Lists, Forwarders and
User Mailboxes changed through the pages, their effect checked by sending mail with smtplib and
reading the mailboxes. One box for the whole module (each test has users of
its own); a fresh browser per test."""

import smtplib

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_PASSWORD, sign_in
from tests.support.licensing import BOX_SERIAL, Vendor
from tests.support.mailserver import MailBox
from tests.support.net import wait_until

MAIL = "/users-groups/mail"
USERS = ("amy", "abe", "lou", "lea", "fay", "fred", "max", "gil", "ray")
SCRIPT_SUBJECT = "<script>alert('subject')</script>"
SCRIPT_BODY = "<script>alert('body')</script><b>not bold</b>"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        vendor = Vendor(tmp_path_factory.mktemp("vendor-keys"))
        env.setenv("GATEBOX_VENDOR_PUBKEYS", str(vendor.public_path))
        env.setenv("GATEBOX_SERIAL", BOX_SERIAL)
        made = MailBox(tmp_path_factory.mktemp("mailserver-web") / "box", vendor, users=USERS,
                       web=True)
        made.cli("user", "add", "admin", "--admin", "--password", ADMIN_PASSWORD)
        made.start()
        yield made
        made.stop()


@pytest.fixture
def admin(page, box):
    sign_in(page, box)
    expect(page.locator("h1")).to_have_text("Dashboard")
    return page


def send(box, to: str, subject: str = "hello", body: str = "hello"):
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30) as client:
        client.sendmail("someone@outside.test", [to],
                        f"From: someone@outside.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n"
                        f"{body}\r\n")


def received(box, user: str, subject: str) -> bool:
    return any(line.endswith(f"  {subject}") for line in box.mailbox(user))


def wait_for(box, user: str, subject: str):
    wait_until(lambda: received(box, user, subject), timeout=30, interval=0.3,
               what=f"'{subject}' in the mailbox of {user}")


def choose(page, name: str, operation: str):
    page.locator(f"tr[data-name='{name}'] input[name=chosen]").check()
    page.click(f"button[value={operation}]")


def refused_at_rcpt(box, to: str) -> bool:
    try:
        send(box, to, "refused?")
    except smtplib.SMTPRecipientsRefused as error:
        return error.recipients[to][0] == 550
    return False


def test_groups_add_modify_delete_and_the_email_permission(admin, box, shot):
    page = admin
    page.goto(box.web_url + MAIL + "/groups")
    expect(page.locator("h1")).to_have_text("Users: Groups")
    expect(page.locator("tr[data-name=default]")).to_contain_text("gil")
    page.click("a.button:has-text('Add')")
    expect(page.locator("h1")).to_have_text("Users: Groups: Edit")
    expect(page.locator("#email")).to_be_checked()
    page.fill("#name", "bad name")
    page.check("#members input[value=gil]")
    page.click("button[value=apply]")
    expect(page.locator("#name-rule")).to_contain_text("Group Name 'bad name': must start")
    expect(page.locator("#members input[value=gil]")).to_be_checked()   # kept for the retry
    page.fill("#name", "sales")
    shot(page, "group-add")
    page.click("button[value=apply]")
    expect(page.locator(".flash.ok")).to_contain_text("Group sales: Email given; members: gil.")
    expect(page.locator("tr[data-name=sales]")).to_contain_text("gil")

    choose(page, "default", "modify")
    expect(page.locator("#members input[value=gil]")).to_be_checked()
    page.uncheck("#members input[value=gil]")
    page.click("button[value=apply]")
    expect(page.locator("tr[data-name=default]")).not_to_contain_text("gil")
    send(box, "gil@example.com", "through sales")   # sales still gives gil Email
    wait_for(box, "gil", "through sales")

    choose(page, "sales", "modify")
    page.fill("#name", "sales-team")
    page.uncheck("#email")
    page.click("button[value=apply]")
    expect(page.locator("tr[data-name=sales-team]")).to_contain_text("no")
    expect(page.locator(".without-email")).to_contain_text("Without Email permission: gil.")
    shot(page, "groups")
    assert refused_at_rcpt(box, "gil@example.com")
    assert received(box, "gil", "through sales")   # kept

    choose(page, "sales-team", "delete")
    expect(page.locator(".flash.ok")).to_have_text("Deleted group sales-team.")
    expect(page.locator("tr[data-name=sales-team]")).to_have_count(0)
    assert box.cli("group", "list").stdout.splitlines()[-1] == "without Email permission: gil"
    box.cli("group", "join", "default", "gil")
    send(box, "gil@example.com", "back again")
    wait_for(box, "gil", "back again")


def test_auto_responders_set_listed_refused_value_and_deleted(admin, box, shot):
    page = admin
    page.goto(box.web_url + MAIL + "/auto-responders")
    expect(page.locator("h1")).to_have_text("Users: Auto-Responders")
    page.click("a.button:has-text('Add')")
    page.select_option("#user", "ray")
    page.fill("#subject", "Out of office")
    page.fill("#message", "   ")
    page.click("button[value=apply]")
    expect(page.locator("#message-rule")).to_have_text("Responder message: must not be empty")
    expect(page.locator("#subject")).to_have_value("Out of office")
    page.fill("#subject", "x" * 201)
    page.fill("#message", SCRIPT_BODY)
    page.click("button[value=apply]")
    expect(page.locator("#subject-rule")).to_contain_text("Responder subject: one line of at most 200")
    page.fill("#subject", "Out of office")
    shot(page, "responder-edit")
    page.click("button[value=apply]")
    expect(page.locator(".flash.ok")).to_have_text("Auto-responder of ray set.")
    row = page.locator("tr[data-name=ray]")
    expect(row).to_contain_text("ray@example.com")
    expect(row).to_contain_text("Out of office")
    expect(row).to_contain_text(SCRIPT_BODY)   # shown as text, not run
    assert page.locator("tr[data-name=ray] b").count() == 0
    assert f"ray: Out of office: {SCRIPT_BODY}" in box.cli("responder", "list").stdout
    shot(page, "responders")

    choose(page, "ray", "modify")
    expect(page.locator("#message")).to_have_value(SCRIPT_BODY)
    page.fill("#message", "Back on Monday.")
    page.click("button[value=apply]")
    expect(row).to_contain_text("Back on Monday.")

    choose(page, "ray", "delete")
    expect(row).to_have_count(0)
    assert box.cli("responder", "list").stdout == ""


def test_aliases_add_modify_delete(admin, box, shot):
    page = admin
    page.goto(box.web_url + MAIL + "/aliases")
    expect(page.locator("h1")).to_have_text("Users: Aliases")
    page.click("a.button:has-text('Add')")
    expect(page.locator("h1")).to_have_text("Users: Aliases: Edit")
    page.fill("#name", "sales")
    expect(page.locator("#domain")).to_have_value("example.com")
    page.fill("#target", "amy")
    shot(page, "alias-add")
    page.click("button[value=apply]")
    expect(page.locator(".flash.ok")).to_contain_text("Alias sales@example.com delivers to amy")
    expect(page.locator("tr[data-name=sales]")).to_contain_text("sales@example.com")
    assert "sales -> amy" in box.cli("alias", "list").stdout
    send(box, "sales@example.com", "to sales")
    wait_for(box, "amy", "to sales")
    shot(page, "aliases")

    choose(page, "sales", "modify")
    expect(page.locator("#target")).to_have_value("amy")
    page.fill("#target", "abe")
    page.click("button[value=apply]")
    expect(page.locator("tr[data-name=sales]")).to_contain_text("abe")
    send(box, "sales@example.com", "to sales again")
    wait_for(box, "abe", "to sales again")
    assert not received(box, "amy", "to sales again")

    choose(page, "sales", "delete")
    expect(page.locator(".flash.ok")).to_have_text("Deleted alias sales.")
    expect(page.locator("tr[data-name=sales]")).to_have_count(0)
    assert box.cli("alias", "list").stdout == ""


def test_bad_value_shows_its_message_next_to_the_field(admin, box, shot):
    page = admin
    page.goto(box.web_url + MAIL + "/aliases/edit")
    page.fill("#name", "no spaces please")
    page.fill("#target", "jsmith@isp")
    page.click("button[value=apply]")
    expect(page.locator("#name-rule")).to_contain_text("Email Addressed To 'no spaces please': must start")
    expect(page.locator("#target-rule")).to_contain_text(
        "Should Be Delivered To 'jsmith@isp': not an email address")
    expect(page.locator("#target")).to_have_value("jsmith@isp")
    shot(page, "alias-refused")
    page.fill("#name", "amy")
    page.fill("#target", "abe")
    page.click("button[value=apply]")
    expect(page.locator("#name-rule")).to_contain_text("already used by a user")
    page.click("text=Cancel")
    expect(page.locator("h1")).to_have_text("Users: Aliases")
    assert box.cli("alias", "list").stdout == ""


def test_distribution_lists_add_modify_delete(admin, box, shot):
    page = admin
    page.goto(box.web_url + MAIL + "/lists")
    page.click("a.button:has-text('Add')")
    page.fill("#name", "team")
    for user in ("lou", "lea"):
        page.select_option("#recipient", user)
        page.click("button[value=add_member]")
    page.select_option("#recipient", "__other__")
    page.fill("#address", "pjones@isp.net")
    page.click("button[value=add_member]")
    expect(page.locator("#selected option")).to_have_text(["lou", "lea", "pjones@isp.net"])
    page.select_option("#recipient", "__other__")
    page.fill("#address", "not an address@")
    page.click("button[value=add_member]")
    expect(page.locator("#address-rule")).to_contain_text("Recipients 'not an address@'")
    shot(page, "list-edit")
    page.select_option("#selected", "pjones@isp.net")
    page.click("button[value=remove_member]")
    expect(page.locator("#selected option")).to_have_text(["lou", "lea"])
    page.click("button[value=apply]")
    expect(page.locator("tr[data-name=team]")).to_contain_text("lea, lou")
    assert box.cli("list", "show", "team").stdout.strip() == "team: lea, lou"
    send(box, "team@example.com", "to the team")
    wait_for(box, "lou", "to the team")
    wait_for(box, "lea", "to the team")
    shot(page, "lists")

    choose(page, "team", "modify")
    expect(page.locator("#selected option")).to_have_text(["lea", "lou"])
    page.fill("#name", "crew")
    page.select_option("#selected", "lea")
    page.click("button[value=remove_member]")
    page.click("button[value=apply]")
    expect(page.locator("tr[data-name=crew]")).to_contain_text("lou")
    assert box.cli("list", "show").stdout.strip() == "crew: lou"

    choose(page, "crew", "delete")
    expect(page.locator(".flash.ok")).to_have_text("Deleted distribution list crew.")
    assert box.cli("list", "show").stdout.strip() == ""


def test_forwarders_with_and_without_a_local_copy(admin, box, shot):
    page = admin
    page.goto(box.web_url + MAIL + "/forwarders")
    page.click("a.button:has-text('Add')")
    page.select_option("#user", "fay")
    page.select_option("#target_user", "fred")
    page.check("#keep_copy")
    shot(page, "forwarder-edit")
    page.click("button[value=apply]")
    expect(page.locator(".flash.ok")).to_contain_text("forwarded to fred, keeping a local copy")
    expect(page.locator("tr[data-name=fay]")).to_contain_text("yes")
    send(box, "fay@example.com", "kept and forwarded")
    wait_for(box, "fred", "kept and forwarded")
    wait_for(box, "fay", "kept and forwarded")
    shot(page, "forwarders")

    choose(page, "fay", "modify")
    expect(page.locator("#keep_copy")).to_be_checked()
    page.uncheck("#keep_copy")
    page.click("button[value=apply]")
    expect(page.locator("tr[data-name=fay]")).to_contain_text("no")
    send(box, "fay@example.com", "forwarded only")
    wait_for(box, "fred", "forwarded only")
    assert not received(box, "fay", "forwarded only")

    choose(page, "fay", "delete")
    expect(page.locator("tr[data-name=fay]")).to_have_count(0)
    assert box.cli("forwarder", "list").stdout == ""


def test_user_mailboxes_sort_view_delete_purge(admin, box, shot):
    page = admin
    alerts = []
    page.context.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    send(box, "max@example.com", "a small one")
    send(box, "max@example.com", SCRIPT_SUBJECT, SCRIPT_BODY)
    send(box, "max@example.com", "a big one", ("x" * 70 + "\r\n") * 70)
    wait_until(lambda: len(box.mailbox("max")) == 3, timeout=30, what="3 messages for max")

    page.goto(box.web_url + MAIL + "/mailboxes")
    page.select_option("#user", "max")
    page.click("button:has-text('Details')")
    rows = page.locator("table.mailbox tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("table.mailbox")).to_contain_text(SCRIPT_SUBJECT)   # as text in the list
    page.click("th a:has-text('Size')")
    expect(rows.nth(2)).to_contain_text("a big one")
    page.click("th a:has-text('Size')")
    expect(rows.nth(0)).to_contain_text("a big one")
    page.click("th a:has-text('Subject')")
    expect(rows.nth(0)).to_contain_text("<script>")
    shot(page, "mailbox")

    with page.context.expect_page() as opened:
        rows.nth(0).locator("a.open-message").click()
    viewer = opened.value
    viewer.wait_for_load_state()
    text = viewer.locator("#message-text").inner_text()
    assert f"Subject: {SCRIPT_SUBJECT}" in text and SCRIPT_BODY in text
    assert viewer.locator("script").count() == 0 and viewer.locator("b").count() == 0
    shot(viewer, "mailbox-message")
    viewer.close()
    assert alerts == []

    rows.nth(0).locator("input[name=message]").check()
    page.click("button[value=delete]")
    expect(page.locator(".flash.ok")).to_have_text("1 message(s) deleted.")
    expect(rows).to_have_count(2)
    assert not any(SCRIPT_SUBJECT in line for line in box.mailbox("max"))

    page.click("a.button:has-text('Purge')")
    expect(page.locator("h1")).to_have_text("Users: User Mailboxes: Purge")
    page.click("button[name=confirm]")
    expect(page.locator(".flash.ok")).to_contain_text("Purged: 2 message(s)")
    expect(page.locator("table.mailbox td.empty")).to_have_text("The mailbox is empty.")
    assert box.mailbox("max") == []
    assert "admin (web)" in [row["actor"] for row in audit_log(box)
                             if row["what"] == "purge the mailbox of max (2 message(s))"]


def audit_log(box) -> list[dict]:
    from firmware.config import Store
    store = Store(box.data)
    try:
        return store.audit_log(200)
    finally:
        store.close()
