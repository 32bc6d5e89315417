"""Anti-Spam Blocked IP Addresses and the black and whitelists through the
running box: real SMTP clients connect from loopback addresses outside
Trusted Networks, the box relays to a real LAN server (smtp-sink), a real
DNS server (dnsmasq) answers the PTR and A lookups of the verified names,
and the lists are changed with the real `gatebox antispam list` command."""

from __future__ import annotations

import smtplib
import sqlite3

import pytest

from tests.support.dnsmasq import DnsServer
from tests.support.net import wait_until
from tests.support.sink import SmtpSink

BLOCKED_CLIENT = "127.0.0.9"
CLIENT = "127.0.0.5"          # PTR mail.spam.test, whose A record points back: verified
FORGED_CLIENT = "127.0.0.6"   # PTR mail.spam.test too, but the name does not point back


@pytest.fixture
def dns(tmp_path):
    server = DnsServer(tmp_path / "dns", [
        f"--host-record=mail.spam.test,{CLIENT}",
        f"--ptr-record=6.0.0.127.in-addr.arpa,mail.spam.test",
    ], probe="mail.spam.test").start()
    yield server
    server.stop()


@pytest.fixture
def lan(tmp_path):
    sink = SmtpSink(tmp_path / "lan").start()
    yield sink
    sink.stop()


@pytest.fixture
def antispam_box(make_box, lan, dns, vendor, box_serial):
    """A relay box for example.com, the Anti-Spam SoftPak licensed."""
    box = make_box(**{"email.server_type": "relay", "email.mail_server_address": lan.address,
                      "email.trusted_networks": "127.0.0.1/32", **dns.settings})
    box.cli("license", "activate", vendor.issue(antispam=None))
    return box


def dialogue(box, sender, recipients, source=CLIENT):
    """[(code, text)]: the greeting's refusal alone, or MAIL and each RCPT."""
    client = smtplib.SMTP(timeout=30, source_address=(source, 0))
    code, text = client.connect(box.host, box.smtp_port)
    if code != 220:
        client.close()
        return [(code, text.decode())]
    try:
        client.ehlo("mx.outside.test")
        replies = [client.docmd(f"MAIL FROM:<{sender}>")]
        replies += [client.docmd(f"RCPT TO:<{recipient}>") for recipient in recipients]
        client.docmd("RSET")
        return [(code, text.decode()) for code, text in replies]
    finally:
        client.close()


def rcpt_code(box, sender, recipient="bob@example.com", source=CLIENT):
    return dialogue(box, sender, [recipient], source)[1]


def counted(box, name: str) -> int:
    with sqlite3.connect(box.data / "gatebox.db") as db:
        row = db.execute("SELECT SUM(count) FROM check_stats WHERE name = ?", [name]).fetchone()
    return row[0] or 0


def refused_with(box, sender, code, source=CLIENT, recipient="bob@example.com"):
    """Waits for the running box to have reloaded the lists."""
    return wait_until(lambda: (lambda r: r if r[0] == code else None)(
        rcpt_code(box, sender, recipient, source)), 20, 0.2, f"RCPT answered {code}")


def test_a_blocked_client_is_refused_at_connect_naming_the_entry(antispam_box):
    antispam_box.configure(**{"antispam.blocked_ips": "10.0.0.0/8\n127.0.0.8-127.0.0.10"})
    antispam_box.start()
    [(code, text)] = dialogue(antispam_box, "a@outside.test", ["bob@example.com"],
                              source=BLOCKED_CLIENT)
    assert code == 554
    assert text == (f"5.7.1 Service unavailable; client [{BLOCKED_CLIENT}] blocked by entry "
                    "127.0.0.8-127.0.0.10")
    assert rcpt_code(antispam_box, "a@outside.test")[0] == 250
    assert f"client [{BLOCKED_CLIENT}] blocked by entry 127.0.0.8-127.0.0.10" in antispam_box.log()
    wait_until(lambda: counted(antispam_box, "blocked_ips=rejected") == 1, 20,
               what="the refusal counted")


def test_blacklist_refuses_at_rcpt_and_a_user_whitelist_overrides_it(antispam_box):
    box = antispam_box.start()
    assert rcpt_code(box, "friend@spam.test")[0] == 250
    box.cli("antispam", "list", "add", "--black", "spam.test")
    code, text = refused_with(box, "friend@spam.test", 554)
    assert text == ("5.7.1 Service unavailable; sender domain spam.test is on the server "
                    "blacklist (entry spam.test)")
    assert "check=antispam_lists" in box.log()

    box.cli("antispam", "list", "add", "--white", "--user", "bob", "friend@spam.test")
    refused_with(box, "friend@spam.test", 250)
    # Only bob's: carol's mail from the same sender is still refused, in the same transaction.
    mail, bob, carol = dialogue(box, "friend@spam.test", ["bob@example.com", "carol@example.com"])
    assert (bob[0], carol[0]) == (250, 554)
    wait_until(lambda: counted(box, "antispam_lists=passed") >= 2, 20,
               what="the whitelisting counted")


def test_a_domain_entry_matches_the_verified_ptr_name_only(antispam_box):
    box = antispam_box.start()
    box.cli("antispam", "list", "add", "--black", "--domain", "example.com", "spam.test")
    code, text = refused_with(box, "someone@clean.test", 554, source=CLIENT)
    assert text == ("5.7.1 Service unavailable; client mail.spam.test is on the blacklist of "
                    "domain example.com (entry spam.test)")
    # The same PTR name from an address it does not resolve back to vouches for nothing.
    assert rcpt_code(box, "someone@clean.test", source=FORGED_CLIENT)[0] == 250


def test_list_commands_add_show_remove(antispam_box):
    box = antispam_box
    box.cli("antispam", "list", "add", "--black", "198.51.100.0/24")
    box.cli("antispam", "list", "add", "--white", "--domain", "example.com", "Partner.Test")
    box.cli("antispam", "list", "add", "--white", "--user", "bob@example.com", "a@b.test")
    shown = box.cli("antispam", "list", "show").stdout.splitlines()
    assert [line.split() for line in shown] == [
        ["LEVEL", "SCOPE", "LIST", "ENTRY"],
        ["server", "-", "black", "198.51.100.0/24"],
        ["domain", "example.com", "white", "partner.test"],
        ["user", "bob@example.com", "white", "a@b.test"],
    ]
    only_bob = box.cli("antispam", "list", "show", "--user", "bob").stdout.splitlines()
    assert [line.split()[-1] for line in only_bob[1:]] == ["a@b.test"]

    refused = box.cli("antispam", "list", "add", "spam.test", check=False)
    assert refused.returncode == 1 and "--white or --black" in refused.stderr
    refused = box.cli("antispam", "list", "add", "--black", "--domain", "example.com",
                      "--user", "bob", "spam.test", check=False)
    assert refused.returncode == 1 and "exclude each other" in refused.stderr
    refused = box.cli("antispam", "list", "add", "--black", "*.spam.test", check=False)
    assert refused.returncode == 1 and "covers its subdomains too" in refused.stderr
    refused = box.cli("antispam", "list", "remove", "--white", "198.51.100.0/24", check=False)
    assert refused.returncode == 1 and "is not on the server whitelist" in refused.stderr

    assert "removed 198.51.100.0/24 from the server blacklist" in box.cli(
        "antispam", "list", "remove", "--black", "198.51.100.0/24").stdout
    assert "198.51.100.0/24" not in box.cli("antispam", "list", "show").stdout


def test_unlicensed_the_lists_are_kept_but_filter_nothing_and_survive_a_lapse(make_box, lan, dns,
                                                                             vendor, box_serial):
    box = make_box(**{"email.server_type": "relay", "email.mail_server_address": lan.address,
                      "email.trusted_networks": "127.0.0.1/32", **dns.settings,
                      "antispam.blocked_ips": BLOCKED_CLIENT})
    added = box.cli("antispam", "list", "add", "--black", "spam.test")
    assert "not licensed" in added.stderr
    box.start()
    # Unlicensed: neither the blocked client nor the blacklisted sender is stopped.
    assert dialogue(box, "a@outside.test", ["bob@example.com"], BLOCKED_CLIENT)[1][0] == 250
    assert rcpt_code(box, "friend@spam.test")[0] == 250

    box.cli("license", "activate", vendor.issue(antispam=None))
    refused_with(box, "friend@spam.test", 554)
    key_id = _license_id(box)
    box.cli("license", "remove", key_id)
    refused_with(box, "friend@spam.test", 250)
    # The lapse kept the list.
    assert "spam.test" in box.cli("antispam", "list", "show").stdout
    box.cli("license", "activate", vendor.issue(antispam="2099-12-31"))
    refused_with(box, "friend@spam.test", 554)


def _license_id(box) -> str:
    with sqlite3.connect(box.data / "gatebox.db") as db:
        return db.execute("SELECT key_id FROM licenses ORDER BY activated_at DESC").fetchone()[0]
