"""The quarantine digest end to end through the running box: a real SMTP
client outside Trusted Networks sends spam (the GTUBE string, which the
Heuristic filter scores 1000) to two users of a relay box whose Filter
Match Action is Quarantine; each recipient's copy is held on its own. The
digest service, due at once, mails each of them through the queue to the
office's real LAN server (smtp-sink); the link in Bob's digest, opened over
HTTPS from the box's own web admin (gunicorn) without signing in, shows
the message, and its POST delivers Bob's copy, once: a second POST is
refused, and Carol's copy stays held. Tampered and expired links are
refused with a page."""

from __future__ import annotations

import email
import email.policy
import re
import time

import pytest
import requests

from firmware.mail.quarantine import Quarantine
from softpaks.antispam.digest import tokens
from tests.integration.test_antispam_actions import send, spam
from tests.support.box import Box, wait_until_idle
from tests.support.dnsmasq import DnsServer
from tests.support.net import wait_until
from tests.support.sink import SmtpSink

CLIENT = "127.0.0.5"


@pytest.fixture
def dns(tmp_path):
    server = DnsServer(tmp_path / "dns", [
        "--local=/outside.test/", "--local=/example.com/",
        f"--host-record=mail.outside.test,{CLIENT}",
    ], probe="mail.outside.test").start()
    yield server
    server.stop()


@pytest.fixture
def lan(tmp_path):
    sink = SmtpSink(tmp_path / "lan").start()
    yield sink
    sink.stop()


@pytest.fixture
def box(tmp_path, lan, dns, vendor, box_serial):
    made = Box(tmp_path / "box", web=True, settings={
        "email.server_type": "relay", "email.mail_server_address": lan.address,
        "email.trusted_networks": "127.0.0.1/32", **dns.settings})
    made.cli("license", "activate", vendor.issue(antispam=None))
    made.cli("antispam", "filter", "set", "content_filter=on", "default_filter=off",
             "custom_filter=off", "heuristic=on", "action=quarantine")
    yield made
    made.stop()


def session() -> requests.Session:
    made = requests.Session()
    made.verify = False          # the box's own self-signed certificate
    made.trust_env = False
    return made


def mails(lan) -> list:
    return [email.message_from_bytes(m, policy=email.policy.default) for m in lan.messages()]


def digests(lan) -> list:
    return [m for m in mails(lan) if str(m["Subject"]).startswith("Quarantine digest")]


def test_a_digest_link_releases_the_recipients_copy_once(box, lan):
    box.start()
    _, done = send(box, spam(), recipients=("bob@example.com", "carol@example.com"))
    assert done[0] == 250
    wait_until(lambda: len(Quarantine(box.data).items("spam")) == 2, 20, 0.2, "two held copies")
    assert sorted(i.recipients[0] for i in Quarantine(box.data).items("spam")) == \
        ["bob@example.com", "carol@example.com"]
    # The digest service finds the digest due at once and sends it.
    box.configure(**{"antispam.digest": "on", "antispam.digest_time": "00:00",
                     "system.timezone": "UTC", "antispam.digest_url": box.web_url})
    wait_until(lambda: len(digests(lan)) == 2, 90, 0.5, "two digests at the LAN server")
    by_recipient = {str(m["To"]): m for m in digests(lan)}
    assert sorted(by_recipient) == ["bob@example.com", "carol@example.com"]
    text = by_recipient["bob@example.com"].get_body(("plain",)).get_content()
    assert "Test of the spam filter" in text and "Score: 1000.0" in text
    link = re.search(re.escape(box.web_url) + r"/quarantine/link/[A-Za-z0-9_\-.]+", text)[0]

    client = session()
    shown = client.get(link)
    assert shown.status_code == 200 and "Test of the spam filter" in shown.text
    assert len(Quarantine(box.data).items("spam")) == 2          # a GET never acts
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', shown.text)[1]
    released = client.post(link, data={"csrf_token": csrf}, headers={"Referer": link})
    assert released.status_code == 200 and "release-link-done" in released.text
    wait_until(lambda: [m for m in mails(lan) if m["X-Gatebox-Quarantine"]], 30, 0.3,
               "the released message at the LAN server")
    again = client.post(link, data={"csrf_token": csrf}, headers={"Referer": link})
    assert again.status_code == 410 and "already used" in again.text
    wait_until_idle(box)
    assert lan.final_count() == 3
    [copy] = [m for m in mails(lan) if m["X-Gatebox-Quarantine"]]
    assert copy["Subject"] == "Test of the spam filter" and "GTUBE" in copy["X-Spam-Report"]
    assert [i.recipients for i in Quarantine(box.data).items("spam")] == [["carol@example.com"]]

    body, _, mac = link.rpartition("/")[2].partition(".")
    tampered = f"{box.web_url}/quarantine/link/{body[:-2]}xx.{mac}"
    refused = client.get(tampered)
    assert refused.status_code == 400 and "release-link-refused" in refused.text
    [carol] = Quarantine(box.data).items("spam")
    expired = tokens.sign(box.data, tokens.Grant(carol.id, "carol@example.com", "release",
                                                 time.time() - 60))
    answer = client.get(f"{box.web_url}/quarantine/link/{expired}")
    assert answer.status_code == 410 and "expired" in answer.text
    assert len(Quarantine(box.data).items("spam")) == 1
