"""The Bayes layer through the real box: `gatebox antispam learn` and
`bayes status|reset` as the administrator types them; a user moving mail
into and out of Junk with a real IMAP client (imaplib) on the box's own
Dovecot, whose IMAPSieve pipes it to the learn command; and scoring at DATA
through the running box, a real SMTP client outside Trusted Networks
sending to a relay box whose LAN server (smtp-sink) receives the mail, with
a real DNS server (dnsmasq) answering the lookups."""

from __future__ import annotations

import email
import email.policy
import os
import re
import smtplib

import pytest

from softpaks.antispam.bayes.sieve import spool_dir
from tests.support.dnsmasq import DnsServer
from tests.support.mailserver import PASSWORD, MailBox
from tests.support.net import wait_for_banner, wait_until
from tests.support.sink import SmtpSink
from tests.support.spam_corpus import Corpus

CLIENT = "127.0.0.5"
SENDER = "someone@outside.test"


def status(box) -> dict:
    text = box.cli("antispam", "bayes", "status").stdout
    found = dict(re.findall(r"^(spam learnt|ham learnt|tokens|votes): (.*)$", text, re.M))
    return {"spam": int(found["spam learnt"]), "ham": int(found["ham learnt"]),
            "tokens": int(found["tokens"]), "votes": found["votes"]}


def write_messages(directory, messages) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for number, message in enumerate(messages):
        path = directory / f"{number}.eml"
        path.write_bytes(message)
        names.append(str(path))
    return names


# ---- the commands ------------------------------------------------------------------------
def test_learn_and_status_and_reset_from_the_shell(make_box, vendor, box_serial, tmp_path):
    box = make_box()
    corpus = Corpus(31)
    spams = write_messages(tmp_path / "spam", corpus.spams(3))
    refused = box.cli("antispam", "learn", "--spam", *spams, check=False)
    assert refused.returncode == 1 and "not licensed" in refused.stderr
    box.cli("license", "activate", vendor.issue(antispam=None))

    assert status(box) == {"spam": 0, "ham": 0, "tokens": 0,
                           "votes": "no (needs 200 more spam and 200 more ham)"}
    done = box.cli("antispam", "learn", "--spam", *spams)
    assert done.stdout.count("learnt as spam") == 3
    ham = corpus.ham()
    box.cli("antispam", "learn", "--ham", "-", input=ham.decode())
    counts = status(box)
    assert (counts["spam"], counts["ham"]) == (3, 1) and counts["tokens"] > 50
    assert counts["votes"] == "no (needs 197 more spam and 199 more ham)"
    # Again: nothing changes. As the other class: the message moves.
    assert "already learnt as spam" in box.cli("antispam", "learn", "--spam", spams[0]).stdout
    moved = box.cli("antispam", "learn", "--ham", spams[0]).stdout
    assert "it was learnt as spam before" in moved
    assert (status(box)["spam"], status(box)["ham"]) == (2, 2)
    box.cli("config", "set", "antispam.bayes_min_spam=2", "antispam.bayes_min_ham=2")
    assert status(box)["votes"] == "yes"

    missing = box.cli("antispam", "learn", "--spam", str(tmp_path / "nothing.eml"), check=False)
    assert missing.returncode == 1 and "not learnt" in missing.stderr
    no_class = box.cli("antispam", "learn", spams[1], check=False)
    assert no_class.returncode != 0 and "--spam or --ham" in no_class.stderr

    box.cli("antispam", "bayes", "reset", "--yes")
    assert status(box)["spam"] == 0 and status(box)["tokens"] == 0


# ---- Junk through IMAP ---------------------------------------------------------------------
@pytest.fixture
def junk_box(tmp_path, vendor, box_serial):
    box = MailBox(tmp_path / "box", vendor)
    box.cli("license", "activate", vendor.issue(mailserver=None, antispam=None))
    box.start()
    wait_for_banner(box.host, box.imap_port, accept=(b"* OK",))
    yield box
    box.stop()


def counts_become(box, spam: int, ham: int):
    wait_until(lambda: (lambda c: (c["spam"], c["ham"]) == (spam, ham))(status(box)), 30, 0.3,
               f"{spam} spam and {ham} ham learnt")


def test_moving_mail_into_and_out_of_junk_teaches_the_filter(junk_box):
    corpus = Corpus(32)
    imap = junk_box.imap()
    assert imap.login("bob", PASSWORD)[0] == "OK"
    assert imap.create("Junk")[0] == "OK" and imap.create("Trash")[0] == "OK"
    first, second, third = corpus.spam(), corpus.spam(), corpus.ham()
    for message in (first, second, third):
        assert imap.append("INBOX", None, None, message)[0] == "OK"
    assert status(junk_box)["spam"] == 0          # arriving in INBOX teaches nothing

    imap.select("INBOX")
    assert imap.copy("1", "Junk")[0] == "OK"       # a copy into Junk: spam
    counts_become(junk_box, 1, 0)
    assert imap.uid("MOVE", _uid(imap, 2), "Junk")[0] == "OK"   # a move into Junk: spam
    counts_become(junk_box, 2, 0)
    assert imap.append("Junk", None, None, corpus.spam())[0] == "OK"   # saved into Junk
    counts_become(junk_box, 3, 0)

    imap.select("Junk")
    # Deleting from Junk (a move to Trash) teaches nothing. The pipe runs
    # within the MOVE command, so once it is answered a lesson would be in
    # the spool, or learnt already.
    assert imap.uid("MOVE", _uid(imap, 3), "Trash")[0] == "OK"
    assert os.listdir(spool_dir(junk_box.data, "ham")) == []
    assert (status(junk_box)["spam"], status(junk_box)["ham"]) == (3, 0)
    # Taking one out of Junk says it is not spam: it moves to ham.
    assert imap.uid("MOVE", _uid(imap, 2), "INBOX")[0] == "OK"
    counts_become(junk_box, 2, 1)
    imap.logout()


def _uid(imap, sequence: int) -> str:
    _, data = imap.fetch(str(sequence), "(UID)")
    return re.search(rb"UID (\d+)", data[0]).group(1).decode()


# ---- scoring at DATA -----------------------------------------------------------------------
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
def relay_box(make_box, lan, dns, vendor, box_serial):
    """A relay box, Anti-Spam licensed, the Content Filter on with the rule
    filters off: Bayes is the only content layer that scores."""
    made = make_box(**{"email.server_type": "relay", "email.mail_server_address": lan.address,
                       "email.trusted_networks": "127.0.0.1/32", **dns.settings})
    made.cli("license", "activate", vendor.issue(antispam=None))
    made.cli("antispam", "filter", "set", "content_filter=on", "default_filter=off",
             "custom_filter=off", "heuristic=off")
    return made


def send(box, message: bytes):
    client = smtplib.SMTP(timeout=30, source_address=(CLIENT, 0))
    try:
        client.connect(box.host, box.smtp_port)
        client.ehlo("mail.outside.test")
        refused = client.sendmail(SENDER, ["bob@example.com"], message)
        assert refused == {}
        client.quit()
    finally:
        client.close()


def checks_of(lan, count: int) -> list[str]:
    wait_until(lambda: lan.count() >= count, 30, 0.2, f"{count} message(s) at the LAN server")
    got = [email.message_from_bytes(m, policy=email.policy.default) for m in lan.messages()]
    return [str(m["X-Gatebox-Checks"]) for m in got]


def test_the_running_box_scores_with_bayes_once_it_has_learnt_enough(relay_box, lan, tmp_path):
    corpus = Corpus(33)
    relay_box.start()
    send(relay_box, corpus.spam())
    [before] = checks_of(lan, 1)
    assert "BAYES_" not in before                    # nothing learnt: it abstains
    relay_box.cli("antispam", "learn", "--ham", *write_messages(tmp_path / "h", corpus.hams(200)))
    relay_box.cli("antispam", "learn", "--spam", *write_messages(tmp_path / "s", corpus.spams(200)))
    assert status(relay_box)["votes"] == "yes"
    send(relay_box, corpus.spam())
    send(relay_box, corpus.ham())
    after = checks_of(lan, 3)
    assert any(re.search(r"BAYES_(99|95)\(3\.", c) for c in after), after
    assert any(re.search(r"BAYES_(00|05)\(-", c) for c in after), after
