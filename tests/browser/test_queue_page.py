"""Messages in Queue on real queued mail: the LAN mail server address points
at a closed port, so what the box accepts stays in the queue."""

import smtplib

from playwright.sync_api import expect

from tests.support.net import wait_until

QUEUE = "/email-server/queue"
SCRIPT_SUBJECT = "<script>alert('subject')</script>"
SCRIPT_BODY = "<script>alert('body')</script><b>not bold</b>"


def _queue_mail(box, count: int):
    with smtplib.SMTP(box.host, box.smtp_port, timeout=30) as client:
        for number in range(count):
            subject = SCRIPT_SUBJECT if number == 0 else f"queued {number}"
            body = SCRIPT_BODY if number == 0 else f"message {number}"
            client.sendmail(f"sender{number}@example.net", [f"user{number}@example.com"],
                            f"From: sender{number}@example.net\r\nTo: user{number}@example.com\r\n"
                            f"Subject: {subject}\r\n\r\n{body}\r\n")
    wait_until(lambda: len(box.queue_ids("deferred")) == count, timeout=30,
               what=f"{count} deferred messages")


def _row(page, qid):
    return page.locator(f"tr[data-qid='{qid}']")


def _apply(page, box, qids, button: str, done: str, attempts: int = 5, bounce: bool = False):
    """Select the messages and press the button. The test box retries
    deferred mail every second or two, and a message being retried is
    refused with "is being delivered right now; try again in a moment": then
    wait until it is no longer active and try again, as an administrator would."""
    for _ in range(attempts):
        wait_until(lambda: not set(qids) & set(box.queue_ids("active")), 30, 0.05,
                   what="the delivery attempt to end")
        for qid in qids:
            _row(page, qid).locator("input[name=qid]").check()
        if bounce:
            page.check("#generate_bounce")
        with page.expect_navigation():
            page.click(button)
        if "is being delivered right now" not in page.locator("main").inner_text():
            break
    expect(page.locator(".flash.ok")).to_contain_text(done)


def test_hold_release_delete_and_purge(signed_in, admin_box, shot):
    page = signed_in
    _queue_mail(admin_box, 4)
    first, second, third, fourth = sorted(admin_box.queue_ids("deferred"))

    page.goto(admin_box.web_url + QUEUE)
    expect(page.locator("table.queue tbody tr")).to_have_count(4)
    expect(_row(page, first)).to_contain_text("deferred")

    _apply(page, admin_box, [first, second], "button[value=hold]", "2 message(s) held.")
    expect(_row(page, first)).to_have_class("state-hold held")
    # Retried: the page's stylesheet may still be applying when the row is there.
    expect(_row(page, first).locator("td").first).to_have_css("background-color",
                                                              "rgb(255, 245, 157)")
    assert sorted(admin_box.queue_ids("hold")) == [first, second]
    shot(page, "queue-held")

    page.goto(admin_box.web_url + QUEUE + "?view=held")
    expect(page.locator("table.queue tbody tr")).to_have_count(2)
    _apply(page, admin_box, [second], "button[value=release]", "1 message(s) released.")
    assert admin_box.queue_ids("hold") == [first]

    page.goto(admin_box.web_url + QUEUE + "?sort=id")
    _apply(page, admin_box, [third], "button[value=delete]", "1 message(s) deleted.")
    expect(_row(page, third)).to_have_count(0)

    _apply(page, admin_box, [fourth], "button[value=delete]", "bounce sent to the senders",
           bounce=True)
    # The bounce to sender3 is itself queued mail now (its domain is unreachable here).
    wait_until(lambda: any(q not in (first, second, third, fourth)
                           for s in ("incoming", "active", "deferred")
                           for q in admin_box.queue_ids(s)), what="the bounce message")

    page.goto(admin_box.web_url + QUEUE)
    page.click("button[value=purge]")
    expect(page.locator("h1")).to_have_text("Email Server: Messages in Queue: Purge")
    shot(page, "queue-purge-confirm")
    page.click("button[name=confirm]")
    expect(page.locator(".flash.ok")).to_contain_text("Purged")
    expect(page.locator("table.queue td.empty")).to_have_text("Mail queue is empty.")


def test_message_viewer_shows_markup_as_text(signed_in, admin_box, shot):
    page = signed_in
    alerts = []
    page.context.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    _queue_mail(admin_box, 2)
    page.goto(admin_box.web_url + QUEUE + "?sort=id")
    expect(page.locator("table.queue")).to_contain_text(SCRIPT_SUBJECT)  # as text in the list too
    shot(page, "queue")
    qid = sorted(admin_box.queue_ids("deferred"))[0]
    with page.context.expect_page() as opened:
        _row(page, qid).locator("a.qid").click()
    viewer = opened.value
    viewer.wait_for_load_state()
    text = viewer.locator("#message-text").inner_text()
    assert f"Subject: {SCRIPT_SUBJECT}" in text
    assert SCRIPT_BODY in text
    assert viewer.locator("script").count() == 0 and viewer.locator("b").count() == 0
    shot(viewer, "message-viewer")
    assert alerts == []
