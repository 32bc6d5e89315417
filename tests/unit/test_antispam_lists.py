"""The Anti-Spam black and whitelists and Blocked IP Addresses on their own:
what an entry may be, which entry matches which client or sender, the
precedence of levels and colours (every rule, both ways), and the checks on
a real settings store. DNS (verified PTR names) is in the integration test
with a real DNS server; here the verified names are handed to the matcher."""

import asyncio
import ipaddress

import pytest

from firmware.mail.policy import Context
from softpaks.antispam import access, lists
from softpaks.antispam.lists import Facts, Lists, validate_entry


# ---- entries ------------------------------------------------------------------------
@pytest.mark.parametrize("text, stored", [
    ("192.0.2.7", "192.0.2.7"),
    ("192.0.2.7/32", "192.0.2.7"),
    ("192.0.2.5/24", "192.0.2.0/24"),
    ("2001:DB8::1", "2001:db8::1"),
    ("2001:db8::/32", "2001:db8::/32"),
    ("::ffff:192.0.2.1", "192.0.2.1"),
    ("::ffff:192.0.2.0/120", "192.0.2.0/24"),
    ("Example.COM", "example.com"),
    ("mail.example.com.", "mail.example.com"),
    ("JSmith@Example.COM", "jsmith@example.com"),
    ("<jsmith@example.com>", "jsmith@example.com"),
    ("  spam.test  ", "spam.test"),
])
def test_entries_are_stored_normalised(text, stored):
    assert validate_entry(text) == stored


@pytest.mark.parametrize("text, says", [
    ("", "give an entry"),
    ("bob", "is not an IP address or network, a domain"),
    ("192.0.2.300", "is not an IP address or network"),
    ("1.2.3", "is not an IP address or network"),
    ("192.0.2.1-192.0.2.9", "ranges are not list entries"),
    ("2001:db8::1-2001:db8::9", "ranges are not list entries"),
    ("*.example.com", "a domain entry covers its subdomains too"),
    ("foo..bar", "is not an IP address"),
    ("a b@example.com", "is not an email address"),
    ("jsmith@localhost", "is not a domain"),
    ("x" * 400, "too long"),
])
def test_anything_else_is_refused_with_the_reason(text, says):
    with pytest.raises(ValueError, match=says):
        validate_entry(text)


# ---- matching -----------------------------------------------------------------------
def compiled(*rows):
    """rows: (level, scope, color, entry)."""
    return Lists([lists.Entry(level, scope, color, validate_entry(entry))
                  for level, scope, color, entry in rows])


def verdict(table, client="198.51.100.9", sender="someone@outside.test",
            recipient="bob@example.com", names=()):
    facts = lists.facts_of(Context(settings={}, client_ip=client, sender=sender))
    recipient_domain = recipient.rpartition("@")[2]
    match = table.decide(table.scopes_for(recipient, recipient_domain, facts.sender_domain),
                         facts, names)
    return None if match is None else (match.entry.level, match.entry.color, match.entry.entry)


@pytest.mark.parametrize("entry, client, listed", [
    ("198.51.100.9", "198.51.100.9", True),
    ("198.51.100.9", "198.51.100.10", False),
    ("198.51.100.0/24", "198.51.100.200", True),
    ("198.51.100.0/24", "198.51.101.1", False),
    ("198.51.100.0/24", "::ffff:198.51.100.7", True),      # an IPv4 client seen on an IPv6 socket
    ("2001:db8::/32", "2001:db8:1::25", True),
    ("2001:db8::/32", "2001:db9::25", False),
    ("2001:db8::25", "2001:db8::25", True),
    ("0.0.0.0/0", "2001:db8::25", False),                 # versions never mix
])
def test_ip_entries_match_the_client_address(entry, client, listed):
    table = compiled(("server", "", "black", entry))
    assert (verdict(table, client=client) is not None) == listed


@pytest.mark.parametrize("entry, sender, names, listed", [
    ("spam.test", "a@spam.test", (), True),
    ("spam.test", "a@mx1.eu.spam.test", (), True),        # subdomains are covered
    ("spam.test", "a@notspam.test", (), False),           # a suffix is not a subdomain
    ("spam.test", "a@spam.test.example", (), False),
    ("spam.test", "a@clean.test", ("mail.spam.test",), True),   # the verified PTR name
    ("spam.test", "a@clean.test", ("mail.clean.test",), False),
    ("a@spam.test", "A@Spam.Test", (), True),             # addresses compare in lower case
    ("a@spam.test", "b@spam.test", (), False),
    ("a@spam.test", "", (), False),                       # the null sender
])
def test_domain_and_address_entries_match_the_sender_and_verified_name(entry, sender, names,
                                                                        listed):
    table = compiled(("server", "", "black", entry))
    assert (verdict(table, sender=sender, names=names) is not None) == listed


# Every precedence rule, each way round: (rows, expected (level, color) or None).
PRECEDENCE = [
    # within one level the whitelist beats the blacklist, whichever entry is broader
    ([("server", "", "black", "outside.test"), ("server", "", "white", "someone@outside.test")],
     ("server", "white")),
    ([("server", "", "black", "someone@outside.test"), ("server", "", "white", "outside.test")],
     ("server", "white")),
    ([("domain", "example.com", "black", "outside.test"),
      ("domain", "example.com", "white", "198.51.100.0/24")], ("domain", "white")),
    ([("user", "bob@example.com", "black", "198.51.100.9"),
      ("user", "bob@example.com", "white", "outside.test")], ("user", "white")),
    # user over domain, both ways
    ([("domain", "example.com", "black", "outside.test"),
      ("user", "bob@example.com", "white", "outside.test")], ("user", "white")),
    ([("domain", "example.com", "white", "outside.test"),
      ("user", "bob@example.com", "black", "outside.test")], ("user", "black")),
    # domain over server, both ways
    ([("server", "", "black", "outside.test"),
      ("domain", "example.com", "white", "outside.test")], ("domain", "white")),
    ([("server", "", "white", "outside.test"),
      ("domain", "example.com", "black", "outside.test")], ("domain", "black")),
    # user over server, both ways
    ([("server", "", "black", "198.51.100.9"),
      ("user", "bob@example.com", "white", "someone@outside.test")], ("user", "white")),
    ([("server", "", "white", "198.51.100.9"),
      ("user", "bob@example.com", "black", "someone@outside.test")], ("user", "black")),
    # a level with no matching entry does not decide: the next one does
    ([("user", "bob@example.com", "white", "friend.test"),
      ("server", "", "black", "outside.test")], ("server", "black")),
    # other users' and other domains' lists do not apply
    ([("user", "carol@example.com", "white", "outside.test"),
      ("server", "", "black", "outside.test")], ("server", "black")),
    ([("domain", "other.example", "black", "outside.test")], None),
    # the domain level covers mail FROM the local domain too
    ([("domain", "example.com", "black", "198.51.100.9")], ("domain", "black")),
    ([], None),
]


@pytest.mark.parametrize("rows, expected", PRECEDENCE)
def test_precedence_user_over_domain_over_server_white_over_black(rows, expected):
    found = verdict(compiled(*rows))
    assert (found[:2] if found else None) == expected


def test_domain_level_applies_to_mail_from_the_local_domain():
    table = compiled(("domain", "example.com", "black", "198.51.100.9"))
    # To a foreign recipient, from a sender of the local domain.
    assert verdict(table, sender="bob@example.com", recipient="x@far.test") == \
        ("domain", "black", "198.51.100.9")
    assert verdict(table, sender="x@near.test", recipient="x@far.test") is None


def test_a_verified_name_may_override_a_lower_level_match():
    table = compiled(("server", "", "white", "198.51.100.9"),
                     ("user", "bob@example.com", "black", "spam.test"))
    scopes = table.scopes_for("bob@example.com", "example.com", "outside.test")
    facts = Facts(ipaddress.ip_address("198.51.100.9"), "someone@outside.test", "outside.test")
    without = table.decide(scopes, facts)
    assert without.entry.color == "white" and table.needs_names(scopes, without)
    assert table.decide(scopes, facts, ("mx.spam.test",)).entry.level == "user"
    # No domain entries at a deciding level: no DNS is needed.
    plain = compiled(("server", "", "white", "198.51.100.9"),
                     ("server", "", "black", "spam.test"))
    scopes = plain.scopes_for("bob@example.com", "example.com", "outside.test")
    assert not plain.needs_names(scopes, plain.decide(scopes, facts))


# ---- the store ----------------------------------------------------------------------
def test_add_remove_entries_audit_and_move_the_generation(store):
    before = store.generation()
    made = lists.add(store, "black", "Spam.Test", actor="tester")
    assert (made.level, made.scope, made.color, made.entry) == ("server", "", "black", "spam.test")
    assert store.generation() == before + 1
    lists.add(store, "white", "friend@spam.test", user="bob", actor="tester")
    lists.add(store, "black", "198.51.100.0/24", domain="Example.com", actor="tester")
    assert [(e.level, e.scope, e.color, e.entry) for e in lists.entries(store)] == [
        ("server", "", "black", "spam.test"),
        ("domain", "example.com", "black", "198.51.100.0/24"),
        ("user", "bob@example.com", "white", "friend@spam.test"),
    ]
    assert [e.entry for e in lists.entries(store, "user", "bob@example.com")] == \
        ["friend@spam.test"]
    audit = [row["what"] for row in store.audit_log() if row["actor"] == "tester"]
    assert "add spam.test to the server blacklist" in audit
    assert "add friend@spam.test to the whitelist of user bob@example.com" in audit
    lists.remove(store, "black", "spam.test", actor="tester")
    assert "remove spam.test from the server blacklist" in store.audit_log()[0]["what"]
    assert [e.entry for e in lists.entries(store, "server")] == []
    assert store.generation() == before + 4


def test_list_changes_that_make_no_sense_are_refused(store):
    lists.add(store, "black", "spam.test")
    with pytest.raises(lists.ListError, match="already on the server blacklist"):
        lists.add(store, "black", "SPAM.test")
    with pytest.raises(lists.ListError, match="is on the server blacklist; remove it there"):
        lists.add(store, "white", "spam.test")
    with pytest.raises(lists.ListError, match="not a local domain of this box"):
        lists.add(store, "black", "spam.test", domain="other.test")
    with pytest.raises(lists.ListError, match="'far.test' is not a local domain"):
        lists.add(store, "black", "spam.test", user="bob@far.test")
    with pytest.raises(lists.ListError, match="not both"):
        lists.add(store, "black", "spam.test", user="bob", domain="example.com")
    with pytest.raises(lists.ListError, match="is not on the whitelist of domain example.com"):
        lists.remove(store, "white", "spam.test", domain="example.com")


def rcpt_context(store, client="198.51.100.9", sender="someone@outside.test",
                 recipient="bob@example.com", trusted=False):
    ctx = Context(settings=store.snapshot(), client_ip=client, trusted=trusted)
    ctx.sender, ctx.recipient = sender, recipient
    return ctx


def test_the_check_whitelists_refuses_and_rereads_after_a_change(store):
    check = lists.ListsCheck(store)
    lists.add(store, "black", "outside.test")
    refused = asyncio.run(check(rcpt_context(store)))
    assert (refused.code, refused.enhanced) == (554, "5.7.1")
    assert refused.text == ("Service unavailable; sender domain outside.test is on the server "
                            "blacklist (entry outside.test)")
    lists.add(store, "white", "someone@outside.test", user="bob")
    ctx = rcpt_context(store)
    assert asyncio.run(check(ctx)) is None
    assert ctx.whitelisted
    assert ctx.results[("antispam_lists", "passed")] == 1
    # Another recipient of the same transaction: bob's list does not apply.
    ctx.recipient = "carol@example.com"
    assert asyncio.run(check(ctx)).code == 554
    assert not ctx.whitelisted
    assert ctx.results[("antispam_lists", "rejected")] == 1


def test_clients_that_may_relay_are_not_looked_at(store):
    lists.add(store, "black", "198.51.100.9")
    ctx = rcpt_context(store, trusted=True)
    assert asyncio.run(lists.ListsCheck(store)(ctx)) is None
    assert not ctx.whitelisted and not ctx.results


# ---- Blocked IP Addresses -----------------------------------------------------------
BLOCKED = "192.0.2.7\n198.51.100.10-198.51.100.20\n203.0.113.0/24\n2001:db8:bad::/48"


@pytest.mark.parametrize("client, entry", [
    ("192.0.2.7", "192.0.2.7"),
    ("192.0.2.8", None),
    ("198.51.100.10", "198.51.100.10-198.51.100.20"),
    ("198.51.100.20", "198.51.100.10-198.51.100.20"),
    ("198.51.100.21", None),
    ("203.0.113.255", "203.0.113.0/24"),
    ("::ffff:203.0.113.1", "203.0.113.0/24"),
    ("2001:db8:bad:1::1", "2001:db8:bad::/48"),
    ("2001:db8:bae::1", None),
])
def test_blocked_ips_name_the_entry_that_matched(client, entry):
    check = access.BlockedIps()
    ctx = Context(settings={"antispam.blocked_ips": BLOCKED}, client_ip=client)
    refused = check(ctx)
    if entry is None:
        assert refused is None
        assert ctx.results[("blocked_ips", "passed")] == 1
    else:
        assert (refused.code, refused.enhanced) == (554, "5.7.1")
        assert refused.text == f"Service unavailable; client [{client}] blocked by entry {entry}"
        assert ctx.results[("blocked_ips", "rejected")] == 1


def test_blocked_ips_win_over_trusted_networks_and_recompile_only_on_change():
    check = access.BlockedIps()
    settings = {"antispam.blocked_ips": "192.0.2.0/24"}
    assert check(Context(settings=settings, client_ip="192.0.2.1", trusted=True)).code == 554
    compiled_once = check.ranges(settings["antispam.blocked_ips"])
    assert check.ranges("192.0.2.0/24") is compiled_once
    assert check.ranges("192.0.2.0/25") is not compiled_once
    assert check(Context(settings={"antispam.blocked_ips": ""}, client_ip="192.0.2.1")) is None
