"""The quarantine digest reaches a real mailbox, and its links work from
there: a stand-alone box with the Mail Server SoftPak (its own Dovecot)
and Anti-Spam, Filter Match Action Quarantine. A real SMTP client outside
Trusted Networks sends the GTUBE string to Bob and Carol; each copy is held.
The digest service mails each of them a digest, which lands in their
Dovecot mailboxes and is read back over IMAP. Bob's Release link, opened
over HTTPS without signing in, delivers his copy to his mailbox, unchanged
but for the release's header, and teaches the Bayes filter "not spam";
Carol's "Release and always allow this sender" link does the same for her
and puts the sender on her own whitelist. Each link works once."""

from __future__ import annotations

import email
import email.policy
import re

import pytest
import requests

from firmware.config import Store
from firmware.mail.quarantine import Quarantine
from softpaks.antispam import lists
from tests.integration.test_antispam_actions import SENDER, send, spam
from tests.integration.test_antispam_bayes_served import status
from tests.integration.test_quarantine_digest_served import dns, session  # noqa: F401 (dns: a fixture)
from tests.support.box import wait_until_idle
from tests.support.mailserver import PASSWORD, MailBox
from tests.support.net import wait_for_banner, wait_until


@pytest.fixture
def box(tmp_path, dns, vendor, box_serial):
    made = MailBox(tmp_path / "box", vendor, web=True, **{
        "email.trusted_networks": "127.0.0.1/32", **dns.settings})
    made.cli("license", "activate", vendor.issue(antispam=None))
    made.cli("antispam", "filter", "set", "content_filter=on", "default_filter=off",
             "custom_filter=off", "heuristic=on", "action=quarantine")
    made.start()
    wait_for_banner(made.host, made.imap_port, accept=(b"* OK",))
    yield made
    made.stop()


def inbox(box, user: str) -> list[email.message.EmailMessage]:
    """The user's INBOX read over IMAP, as the office's mail client reads it."""
    imap = box.imap()
    try:
        assert imap.login(user, PASSWORD)[0] == "OK"
        imap.select("INBOX", readonly=True)
        _, numbers = imap.search(None, "ALL")
        found = []
        for number in numbers[0].split():
            _, data = imap.fetch(number, "(RFC822)")
            found.append(email.message_from_bytes(data[0][1], policy=email.policy.default))
        return found
    finally:
        imap.logout()


def wait_for(box, user: str, what: str, test) -> list:
    return wait_until(lambda: [m for m in inbox(box, user) if test(m)], 90, 0.5,
                      f"{what} in {user}'s mailbox")


def plain(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def is_digest(message) -> bool:
    return str(message["Subject"]).startswith("Quarantine digest")


def follow(client, link: str) -> requests.Response:
    shown = client.get(link)
    assert shown.status_code == 200 and "Test of the spam filter" in shown.text, shown.text
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', shown.text)[1]
    return client.post(link, data={"csrf_token": csrf}, headers={"Referer": link})


def test_the_digest_reaches_each_mailbox_and_its_links_release_from_there(box):
    _, done = send(box, spam(), recipients=("bob@example.com", "carol@example.com"))
    assert done[0] == 250
    wait_until(lambda: len(Quarantine(box.data).items("spam")) == 2, 20, 0.2, "two held copies")
    assert inbox(box, "bob") == [] and inbox(box, "carol") == []
    assert (status(box)["spam"], status(box)["ham"]) == (0, 0)

    box.configure(**{"antispam.digest": "on", "antispam.digest_time": "00:00",
                     "system.timezone": "UTC", "antispam.digest_url": box.web_url})
    [bob_digest] = wait_for(box, "bob", "the digest", is_digest)
    [carol_digest] = wait_for(box, "carol", "the digest", is_digest)
    text = plain(bob_digest)
    assert f"From:    Someone <{SENDER}>" in text and "Subject: Test of the spam filter" in text
    assert "Score: 1000.0" in text and re.search(r"Date:    \d{4}-\d\d-\d\d \d\d:\d\d", text)
    link = re.search(r"^Release: (\S+)$", text, re.M)[1]
    assert link.startswith(box.web_url + "/quarantine/link/")

    client = session()
    released = follow(client, link)
    assert released.status_code == 200 and "release-link-done" in released.text
    [copy] = wait_for(box, "bob", "the released copy", lambda m: m["X-Gatebox-Quarantine"])
    assert copy["Subject"] == "Test of the spam filter" and "GTUBE" in copy["X-Spam-Report"]
    assert "This is the GTUBE test." in plain(copy)
    # The release taught the filter that this was not spam.
    assert (status(box)["spam"], status(box)["ham"]) == (0, 1)

    carol_text = plain(carol_digest)
    allow = re.search(r"^Release and always allow this sender: (\S+)$", carol_text, re.M)[1]
    assert follow(session(), allow).status_code == 200
    wait_for(box, "carol", "the released copy", lambda m: m["X-Gatebox-Quarantine"])
    store = Store(box.data)
    try:
        assert [(e.level, e.scope, e.color, e.entry) for e in lists.entries(store, "user")] == \
            [("user", "carol@example.com", "white", SENDER)]
    finally:
        store.close()
    assert Quarantine(box.data).items("spam") == []

    # Each link works once: the second use is refused and delivers nothing more.
    for used in (link, allow):
        again = client.get(used)
        assert again.status_code == 410 and "already used" in again.text
    wait_until_idle(box)
    assert len(inbox(box, "bob")) == 2 and len(inbox(box, "carol")) == 2
