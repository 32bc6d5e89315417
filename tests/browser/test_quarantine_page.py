"""Email Server > Quarantine in Chromium against the running box: the
search form narrows the list, a message opens in its own window as text
with the rules that scored, and Release there hands it to the queue."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from firmware.config import Store
from firmware.mail import scoring
from firmware.mail.policy import Symbol
from firmware.mail.quarantine import Quarantine
from firmware.mail.submit import Submission
from tests.support.net import wait_until

QUARANTINE = "/email-server/quarantine"
HOSTILE = "<script>document.title='owned'</script>"


def hold(box, sender: str, subject: str, body: str = "Buy now.", age_days: float = 0) -> str:
    message = (f"Subject: {subject}\r\nFrom: <{sender}>\r\n\r\n{body}\r\n").encode()
    action = scoring.Action(scoring.QUARANTINE, 12.5, 5.0)
    symbols = [Symbol("GTUBE", 10.0, "the GTUBE test string"), Symbol("DATE_MISSING", 2.5)]
    store = Store(box.data)
    try:
        settings = store.snapshot()
        marked = scoring.mark(message, action, symbols, [], settings, "gatebox.example.com",
                              scoring.SpamPolicy(tag=5.0, quarantine=5.0, tag_subject=False))
        return Quarantine(box.data).put(Submission(
            sender=sender, recipients=["bob@example.com"], message=marked, origin="smtpd",
            direction="inbound", client_address="192.0.2.9",
            received=time.time() - age_days * 86400),
            "spam", "spam score 12.5 >= 5.0 (quarantine score)", settings)
    finally:
        store.close()


def test_search_view_and_release(signed_in, admin_box, shot):
    page = signed_in
    wanted = hold(admin_box, "news@example.net", "Weekly news", HOSTILE)
    hold(admin_box, "eve@example.org", "Other offer")
    hold(admin_box, "eve@example.org", "Third offer")

    page.goto(admin_box.web_url + QUARANTINE)
    expect(page.locator("table.quarantine tbody tr")).to_have_count(3)
    page.fill("#search-sender", "NEWS@")
    page.click("#search-button")
    expect(page.locator("table.quarantine tbody tr")).to_have_count(1)
    row = page.locator(f"tr[data-qid='{wanted}']")
    expect(row.locator("td.subject")).to_have_text("Weekly news")
    expect(row.locator("td.score")).to_have_text("12.5")
    page.fill("#search-sender", "")
    page.fill("#search-subject", "offer")
    page.click("#search-button")
    expect(page.locator("table.quarantine tbody tr")).to_have_count(2)
    expect(page.locator("#quarantine-total")).to_contain_text("2 message(s) found")
    shot(page, "quarantine-search")

    page.goto(admin_box.web_url + QUARANTINE)
    with page.context.expect_page() as opened:
        page.click(f"a.qid:has-text('{wanted}')")
    window = opened.value
    expect(window.locator("#spam-report td.rule")).to_have_text(["GTUBE", "DATE_MISSING"])
    expect(window.locator("#message-text")).to_contain_text(HOSTILE)
    assert window.title() != "owned"
    shot(window, "quarantine-message")

    window.click("#message-actions button[value=release]")
    expect(window.locator(".flash.ok")).to_contain_text("1 message(s) released")
    assert wanted not in {item.id for item in Quarantine(admin_box.data).items()}
    wait_until(lambda: any(admin_box.queue_ids(state) for state in ("incoming", "active",
                                                                    "deferred")),
               timeout=30, what="the released message in the queue")
    expect(window.locator("table.quarantine tbody tr")).to_have_count(2)


def test_a_digest_link_opens_without_signing_in_and_works_once(page, admin_box, vendor, shot):
    import email
    import email.policy
    import re

    from firmware.mail.queue import Spool
    admin_box.cli("license", "activate", vendor.issue(antispam=None))
    admin_box.configure(**{"antispam.digest_url": admin_box.web_url})
    wanted = hold(admin_box, "news@example.net", "Weekly news")
    admin_box.cli("antispam", "digest", "send")
    spool = Spool(admin_box.data / "queue")
    [qid] = spool.ids("incoming")
    _, raw = spool.load("incoming", qid)
    digest = email.message_from_bytes(raw, policy=email.policy.default)
    link = re.search(re.escape(admin_box.web_url) + r"/quarantine/link/[A-Za-z0-9_\-.]+",
                     digest.get_body(("plain",)).get_content())[0]
    admin_box.start()

    page.goto(link)
    expect(page.locator("table.release-link")).to_contain_text("Weekly news")
    expect(page.locator("nav.menu")).to_have_count(0)          # no admin session
    assert wanted in {item.id for item in Quarantine(admin_box.data).items()}
    shot(page, "quarantine-link")
    page.click("#release-link-button")
    expect(page.locator("#release-link-done")).to_contain_text("bob@example.com")
    assert wanted not in {item.id for item in Quarantine(admin_box.data).items()}

    page.goto(link)
    expect(page.locator("#release-link-refused")).to_contain_text("already used")


def test_learn_buttons_teach_the_filter_and_delete_removes_without_delivering(
        signed_in, admin_box, vendor, shot):
    from softpaks.antispam.bayes import store as bayes_store
    page = signed_in
    admin_box.cli("license", "activate", vendor.issue(antispam=None))
    taught = hold(admin_box, "news@example.net", "Weekly news", "Cheap watches, today only.")
    unwanted = hold(admin_box, "eve@example.org", "Other offer")
    kept = hold(admin_box, "eve@example.org", "Third offer")

    def totals():
        db = bayes_store.BayesStore(admin_box.data)
        try:
            return db.totals().spam, db.totals().ham
        finally:
            db.close()

    page.goto(admin_box.web_url + QUARANTINE)
    with page.context.expect_page() as opened:
        page.click(f"a.qid:has-text('{taught}')")
    window = opened.value
    window.click("#message-actions button[value=learn_spam]")
    expect(window.locator(".flash.ok")).to_have_text("Learn as spam: Bayes: learnt as spam.")
    assert totals() == (1, 0)
    # Learning leaves the message where it was, on its own page.
    expect(window.locator("h1")).to_have_text(f"Quarantined message {taught}")
    window.click("#message-actions button[value=learn_ham]")
    expect(window.locator(".flash.ok")).to_contain_text(
        "learnt as ham (it was learnt as spam before)")
    assert totals() == (0, 1)
    shot(window, "quarantine-learnt")
    window.click("#message-actions button[value=delete]")
    expect(window.locator(".flash.ok")).to_have_text("1 message(s) deleted from the quarantine.")
    expect(window.locator("table.quarantine tbody tr")).to_have_count(2)

    page.goto(admin_box.web_url + QUARANTINE)
    page.check(f"tr[data-qid='{unwanted}'] input[name=qid]")
    page.click("button[name=operation][value=delete]")
    expect(page.locator(".flash.ok")).to_have_text("1 message(s) deleted from the quarantine.")
    expect(page.locator("table.quarantine tbody tr")).to_have_count(1)
    expect(page.locator(f"tr[data-qid='{kept}']")).to_have_count(1)
    assert {item.id for item in Quarantine(admin_box.data).items()} == {kept}
    # Deleted is gone: nothing of either reached the queue.
    assert not any(admin_box.queue_ids(state) for state in ("incoming", "active", "deferred"))
    assert totals() == (0, 1)


def test_search_by_date(signed_in, admin_box):
    page = signed_in
    old = hold(admin_box, "eve@example.org", "Offer of last week", age_days=10)
    new = hold(admin_box, "eve@example.org", "Offer of today")

    def day(days_ago: int) -> str:
        return time.strftime("%Y-%m-%d", time.localtime(time.time() - days_ago * 86400))
    page.goto(admin_box.web_url + QUARANTINE)
    expect(page.locator("table.quarantine tbody tr")).to_have_count(2)
    page.fill("#search-since", day(2))
    page.click("#search-button")
    expect(page.locator("table.quarantine tbody tr")).to_have_count(1)
    expect(page.locator(f"tr[data-qid='{new}']")).to_have_count(1)
    page.fill("#search-since", day(14))
    page.fill("#search-until", day(5))
    page.click("#search-button")
    expect(page.locator("table.quarantine tbody tr")).to_have_count(1)
    expect(page.locator(f"tr[data-qid='{old}'] td.subject")).to_have_text("Offer of last week")
    expect(page.locator("#quarantine-total")).to_contain_text("1 message(s) found")
    # A range that holds neither.
    page.fill("#search-since", day(4))
    page.fill("#search-until", day(3))
    page.click("#search-button")
    expect(page.locator("table.quarantine tbody td.empty")).to_have_text("No message matches.")
