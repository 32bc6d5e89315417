"""Email Server > Address Verification through the running box, from
outside: a client outside Trusted Networks talks SMTP to `gatebox run`,
whose checks ask a real LAN server (aiosmtpd with a user list), a real
sender MX on a loopback port 25, a real DNS server (dnsmasq) and a real
slapd."""

from __future__ import annotations

import smtplib
import sqlite3
import time

import pytest

from tests.support.box import wait_until_idle
from tests.support.callout_servers import (MisbehavingServer, UserListHandler, UserListServer,
                                           free_port_25_address)
from tests.support.dnsmasq import DnsServer
from tests.support.net import free_port, wait_until
from tests.support.slapd import LdapServer

UNTRUSTED = "127.0.0.2"
LAN_USERS = ("jane@example.com", "bob@example.com")


class DeliveringUserList(UserListHandler):
    """The LAN server: refuses unknown users at RCPT, keeps what it is given."""

    def __init__(self, users=(), catch_all=False):
        super().__init__(users, catch_all)
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Ok: kept"


@pytest.fixture
def lan():
    server = UserListServer(LAN_USERS)
    server.controller.handler = DeliveringUserList(LAN_USERS)
    server.start()
    yield server
    server.stop()


def relay_box(make_box, lan_address, **settings):
    return make_box(**{"email.server_type": "relay", "email.mail_server_address": lan_address,
                       "email.trusted_networks": "127.0.0.1/32", **settings})


def dialogue(box, sender, recipients, message=None):
    """[(code, text)] for MAIL, each RCPT, then DATA's end when any RCPT got 250."""
    replies = []
    _talk(box, sender, recipients, message, replies)
    return [(code, text.decode() if isinstance(text, bytes) else text) for code, text in replies]


def _talk(box, sender, recipients, message, replies):
    with smtplib.SMTP(box.host, box.smtp_port, timeout=60, source_address=(UNTRUSTED, 0),
                      local_hostname="mx.outside.test") as client:
        client.ehlo("mx.outside.test")
        replies.append(client.docmd(f"MAIL FROM:<{sender}>"))
        if replies[0][0] != 250:
            return
        for recipient in recipients:
            replies.append(client.docmd(f"RCPT TO:<{recipient}>"))
        if message is not None and any(code == 250 for code, _ in replies[1:]):
            code, text = client.data(message)
            replies.append((code, text))


def queue_is_empty(box):
    return box.pending() == [] and box.queue_ids("hold") == []


def counted(box, name: str) -> int:
    """A result counter as the box records it (the page and dashboard read these)."""
    with sqlite3.connect(box.data / "gatebox.db") as db:
        row = db.execute("SELECT SUM(count) FROM check_stats WHERE name = ?", [name]).fetchone()
    return row[0] or 0


MESSAGE = (b"From: Someone <someone@outside.test>\r\nTo: jane@example.com\r\n"
           b"Subject: hello\r\nMessage-ID: <1@outside.test>\r\n\r\nhello\r\n")


def test_unknown_recipient_is_refused_at_rcpt_and_nothing_is_bounced(make_box, lan):
    box = relay_box(make_box, lan.label, **{"email.verify_recipient_smtp": "on"}).start()
    replies = dialogue(box, "someone@outside.test", ["nobody@example.com", "jane@example.com"],
                       MESSAGE)
    mail, unknown, known, data = replies
    assert mail[0] == 250
    assert unknown[0] == 550 and unknown[1].startswith("5.1.1"), unknown
    assert known[0] == 250, known
    assert data[0] == 250, data
    wait_until_idle(box)
    # The message reached jane only; no bounce was made for nobody@.
    handler = lan.controller.handler
    assert [(m[0], m[1]) for m in handler.messages] == [("someone@outside.test",
                                                         ["jane@example.com"])]
    assert b"RECIPIENT_VERIFIED" in handler.messages[0][2]
    # No bounce waits in the queue either.
    assert queue_is_empty(box)
    # The callout for nobody@ asked and quit, without DATA.
    assert any("RCPT TO:<nobody@example.com>" in s and "DATA" not in s and s[-1] == "QUIT"
               for s in lan.sessions()), lan.sessions()


def test_a_second_ask_is_answered_from_the_cache(make_box, lan):
    box = relay_box(make_box, lan.label, **{"email.verify_recipient_smtp": "on"}).start()
    assert dialogue(box, "a@outside.test", ["nobody@example.com"])[1][0] == 550
    asked = len(lan.sessions())
    assert dialogue(box, "b@outside.test", ["nobody@example.com"])[1][0] == 550
    assert len(lan.sessions()) == asked
    wait_until(lambda: counted(box, "verify_recipient=refuse") == 2, 30,
               what="both refusals counted per result")


def test_lan_server_down_and_nothing_cached_defers(make_box):
    down = f"127.0.0.1:{free_port()}"
    box = relay_box(make_box, down, **{"email.verify_recipient_smtp": "on"}).start()
    [_, rcpt] = dialogue(box, "someone@outside.test", ["jane@example.com"])
    assert rcpt[0] == 450 and rcpt[1].startswith("4.4.1"), rcpt
    assert queue_is_empty(box)


def test_a_lan_server_that_never_answers_defers_within_the_time_limit(make_box):
    tarpit = MisbehavingServer("silent").start()
    try:
        box = relay_box(make_box, f"{tarpit.host}:{tarpit.port}",
                        **{"email.verify_recipient_smtp": "on"}).start()
        started = time.monotonic()
        [_, rcpt] = dialogue(box, "someone@outside.test", ["jane@example.com"])
        first = time.monotonic() - started
        assert rcpt[0] == 450 and rcpt[1].startswith("4.4.1"), rcpt
        assert first < 25, first   # the probe's own limit, not the check's 30 s
        # Known to be down: the next recipient is deferred at once, without asking.
        asked = tarpit.accepted
        started = time.monotonic()
        [_, rcpt] = dialogue(box, "someone@outside.test", ["bob@example.com"])
        assert rcpt[0] == 450 and "could not be reached a moment ago" in rcpt[1], rcpt
        assert tarpit.accepted == asked
    finally:
        tarpit.stop()


def test_catch_all_lan_server_stops_deciding(make_box):
    server = UserListServer(catch_all=True).start()
    try:
        box = relay_box(make_box, server.label, **{"email.verify_recipient_smtp": "on"}).start()
        [_, rcpt] = dialogue(box, "someone@outside.test", ["anyone@example.com"])
        assert rcpt[0] == 250
        with sqlite3.connect(box.data / "gatebox.db") as db:
            [(status,)] = db.execute("SELECT status FROM verify_cache WHERE kind = 'catchall'")
        assert status == "accepted"
    finally:
        server.stop()


def test_manual_list_and_local_sender(make_box):
    down = f"127.0.0.1:{free_port()}"
    box = relay_box(make_box, down, **{
        "email.internal_addresses": "jane@example.com\n*@sales.example.com",
        "email.verify_sender_local": "on", "email.domain": "example.com"}).start()
    replies = dialogue(box, "someone@outside.test", ["jane@example.com", "joe@example.com"])
    assert [r[0] for r in replies] == [250, 250, 550], replies
    # A stranger claiming to be a colleague who does not exist.
    [mail] = dialogue(box, "ceo@example.com", ["jane@example.com"])
    assert mail[0] == 550 and mail[1].startswith("5.7.1"), mail
    # A colleague who exists passes.
    assert dialogue(box, "jane@example.com", ["jane@example.com"])[0][0] == 250
    # `gatebox verify test` asks the same checks.
    said = box.cli("verify", "test", "joe@example.com").stdout
    assert "verify_recipient" in said and "550 5.1.1" in said and "550 5.7.1" in said
    assert "would answer" not in box.cli("verify", "test", "anyone@sales.example.com").stdout


def test_invalid_headers_are_refused(make_box, lan):
    box = relay_box(make_box, lan.label, **{"email.deny_invalid_headers": "on"}).start()
    broken = b"From: <no closing\r\nTo: jane@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    replies = dialogue(box, "someone@outside.test", ["jane@example.com"], broken)
    assert replies[-1][0] == 550 and replies[-1][1].startswith("5.6.0"), replies
    assert "From" in replies[-1][1]
    no_from = b"To: jane@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    assert dialogue(box, "someone@outside.test", ["jane@example.com"], no_from)[-1][0] == 550
    assert dialogue(box, "someone@outside.test", ["jane@example.com"], MESSAGE)[-1][0] == 250


# ---- SPF and the sender callout, with a real DNS server --------------------------------------
@pytest.fixture
def sender_mx():
    server = UserListServer(["known@far.test"], host=free_port_25_address(), port=25).start()
    yield server
    server.stop()


@pytest.fixture
def dns(tmp_path, sender_mx):
    server = DnsServer(tmp_path / "dns", [
        "--host-record=probe.test,127.0.0.1",
        "--mx-host=far.test,mx.far.test,10", f"--host-record=mx.far.test,{sender_mx.host}",
        "--mx-host=dead.test,mx.dead.test,10", "--host-record=mx.dead.test,127.0.0.1",
        # Popen passes no shell: no quotes around the text.
        "--txt-record=far.test,v=spf1 ip4:127.0.0.2 -all",
        "--txt-record=fail.test,v=spf1 ip4:192.0.2.1 -all",
        "--txt-record=soft.test,v=spf1 ~all",
        "--host-record=fail.test,127.0.0.1", "--host-record=soft.test,127.0.0.1",
    ], probe="probe.test").start()
    yield server
    server.stop()


def test_spf_fail_is_refused_and_softfail_is_noted(make_box, lan, dns):
    box = relay_box(make_box, lan.label, **{"email.spf": "on", **dns.settings}).start()
    [mail] = dialogue(box, "someone@fail.test", ["jane@example.com"])
    assert mail[0] == 550 and mail[1].startswith("5.7.23"), mail
    replies = dialogue(box, "someone@soft.test", ["jane@example.com"], MESSAGE)
    assert replies[-1][0] == 250, replies
    wait_until_idle(box)
    [(_, _, content)] = lan.controller.handler.messages
    assert b"spf=softfail" in content and b"smtp.mailfrom=someone@soft.test" in content
    assert b"SPF_SOFTFAIL" in content   # the symbol, in X-Gatebox-Checks


def test_sender_callout(make_box, lan, dns, sender_mx):
    box = relay_box(make_box, lan.label, **{"email.verify_sender_callout": "on",
                                            **dns.settings}).start()
    [mail] = dialogue(box, "ghost@far.test", ["jane@example.com"])
    assert mail[0] == 550 and mail[1].startswith("5.1.7"), mail
    assert dialogue(box, "known@far.test", ["jane@example.com"])[0][0] == 250
    # dead.test's MX has nothing listening on port 25: deferred, never refused.
    [mail] = dialogue(box, "someone@dead.test", ["jane@example.com"])
    assert mail[0] == 450 and mail[1].startswith("4.1.7"), mail
    assert all("DATA" not in s for s in sender_mx.sessions())


# ---- LDAP --------------------------------------------------------------------------------------
def test_ldap_list_decides_after_the_first_sync(make_box, tmp_path):
    slapd = LdapServer(tmp_path / "slapd").start()
    try:
        box = relay_box(make_box, f"127.0.0.1:{free_port()}", **{
            "email.verify_recipient_ldap": "on", "email.ldap_server": slapd.address,
            "email.ldap_security": "none", "email.ldap_domain": "example.com"}).start()

        def synced():
            with sqlite3.connect(box.data / "gatebox.db") as db:
                row = db.execute("SELECT succeeded, count FROM ldap_sync").fetchone()
            return row if row and row[0] else None
        wait_until(synced, 60, what="the first LDAP sync")
        replies = dialogue(box, "someone@outside.test", ["jane@example.com", "j.doe@example.com",
                                                         "bob@example.com", "nobody@example.com"])
        assert [r[0] for r in replies] == [250, 250, 250, 250, 550], replies
        assert "addresses:    3" in box.cli("verify", "ldap", "--update-now").stdout
        slapd.stop()
        # The directory gone: Update Now says why, and the list read before still decides.
        failed = box.cli("verify", "ldap", "--update-now", check=False)
        assert failed.returncode != 0 and "cannot connect" in failed.stderr + failed.stdout
        assert dialogue(box, "x@outside.test", ["bob@example.com"])[1][0] == 250
    finally:
        slapd.stop()


def test_ldap_never_synced_defers(make_box):
    box = relay_box(make_box, f"127.0.0.1:{free_port()}", **{
        "email.verify_recipient_ldap": "on", "email.ldap_server": f"127.0.0.1:{free_port()}",
        "email.ldap_security": "none", "email.ldap_domain": "example.com"}).start()
    [_, rcpt] = dialogue(box, "someone@outside.test", ["jane@example.com"])
    assert rcpt[0] == 450, rcpt
