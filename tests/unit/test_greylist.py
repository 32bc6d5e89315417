"""The greylist in-process, through its injectable clock: each test moves a
fake "now" across the Initial Block Period, the Block Period Lifetime and
the Pass Record Lifetime instead of waiting. The database is the real one
(the SoftPak's migrations on a fresh store); the SPF/FCrDNS exemption asks
a real DNS server (dnsmasq on loopback)."""

from __future__ import annotations

import asyncio

import pytest

from firmware.mail.policy import Context, Order, Policy
from firmware.mail.resolver import Resolver
from softpaks.antispam import greylist
from softpaks.antispam.greylist import (DEFER, PASS, Greylist, greylist_check, network_of,
                                        plain_sender, triplet)
from tests.support.dnsmasq import DnsServer

MIN, DAY = 60.0, 86400.0
T0 = 1_700_000_000.0
# The shipped defaults: 60 min initial, 240 min lifetime, 36 days, 5 networks.
INITIAL, LIFETIME, PASS_LIFE = 60 * MIN, 240 * MIN, 36 * DAY


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float):
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def grey(store, clock):
    return Greylist(store, clock)


def attempt(grey, client="192.0.2.7", sender="alice@sender.test", recipient="bob@example.com"):
    return grey.decide(client, sender, recipient)


# ---- the triplet -----------------------------------------------------------------------

def test_ipv4_clients_group_by_slash_24_and_ipv6_by_slash_64():
    assert network_of("192.0.2.7") == network_of("192.0.2.250") == "192.0.2.0/24"
    assert network_of("192.0.3.7") != network_of("192.0.2.7")
    assert network_of("2001:db8:1:2::5") == network_of("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert network_of("2001:db8:1:3::5") != network_of("2001:db8:1:2::5")
    assert network_of("::ffff:192.0.2.9") == "192.0.2.0/24"
    # As `show` prints them, and narrower networks, give their group; wider ones are refused.
    assert network_of("192.0.2.0/24") == network_of("192.0.2.128/25") == "192.0.2.0/24"
    with pytest.raises(ValueError, match="/24"):
        network_of("192.0.0.0/16")


@pytest.mark.parametrize("sender, plain", [
    ("Alice@Sender.Test", "alice@sender.test"),
    ("prvs=0123abcdef=alice@sender.test", "alice@sender.test"),
    ("PRVS=1234567890=Alice@Sender.test", "alice@sender.test"),
    ("msprvs1=19abc=bounces-7@mail.test", "bounces-7@mail.test"),
    ("btv1==0a1b2c3d4e5==alice@sender.test", "alice@sender.test"),
    ("SRS0=HHHH=TT=sender.test=alice@forwarder.test", "alice@sender.test"),
    ("SRS0+x1Y2=5T=sender.test=alice@forwarder.test", "alice@sender.test"),
    ("SRS1=HHHH=forwarder.test==HHHH=TT=sender.test=alice@second.test", "alice@sender.test"),
    ("prvs=0123abcdef=SRS0=HHHH=TT=sender.test=alice@forwarder.test", "alice@sender.test"),
    ("SRS0=HHHH=TT=sender.test=a=b@forwarder.test", "a=b@sender.test"),
    ("", ""),
    ("<>", ""),
    ("prvsx=ab=alice@sender.test", "prvsx=ab=alice@sender.test"),
])
def test_sender_is_lower_cased_with_batv_and_srs_tags_stripped(sender, plain):
    assert plain_sender(sender) == plain


def test_retries_with_fresh_batv_and_srs_tags_match_the_first_attempt(grey, clock):
    assert attempt(grey, sender="prvs=0000000001=alice@sender.test").action == DEFER
    clock.advance(INITIAL + 1)
    assert attempt(grey, sender="prvs=9999999999=Alice@Sender.TEST",
                   recipient="Bob@Example.COM").action == PASS


# ---- the lifecycle ---------------------------------------------------------------------

def test_first_attempt_is_deferred_and_recorded(grey, store, clock):
    decision = attempt(grey)
    assert decision.action == DEFER and decision.reason == "first attempt"
    [row] = greylist.pending(store, clock.now)
    assert (row.network, row.sender, row.recipient) == ("192.0.2.0/24", "alice@sender.test",
                                                        "bob@example.com")
    assert row.first_seen == T0 and row.age == 0 and row.passes_in == INITIAL


def test_a_retry_before_the_initial_period_stays_deferred(grey, store, clock):
    attempt(grey)
    clock.advance(INITIAL - 1)
    decision = attempt(grey)
    assert decision.action == DEFER and "before the initial block period" in decision.reason
    # The early retry does not restart the period: one second later it passes.
    clock.advance(1)
    assert attempt(grey).action == PASS


def test_a_retry_after_the_period_passes_from_another_server_of_the_pool(grey, store, clock):
    attempt(grey, client="192.0.2.7")
    clock.advance(INITIAL + 5)
    decision = attempt(grey, client="192.0.2.99")
    assert decision.action == PASS and decision.reason == f"retried after {INITIAL + 5:.0f}s"
    assert greylist.pending(store, clock.now) == []
    assert greylist.passed_count(store, clock.now) == 1
    # Another network, or an IPv6 pool, starts its own triplet.
    assert attempt(grey, client="192.0.3.7").action == DEFER
    assert attempt(grey, client="2001:db8:1:2::5").action == DEFER
    clock.advance(INITIAL)
    assert attempt(grey, client="2001:db8:1:2:abcd::9").action == PASS
    assert attempt(grey, client="2001:db8:1:3::5").action == DEFER


def test_a_triplet_not_retried_within_the_lifetime_is_forgotten(grey, store, clock):
    attempt(grey)
    clock.advance(LIFETIME + 1)
    assert greylist.pending(store, clock.now) == []
    decision = attempt(grey)
    assert decision.action == DEFER and "expired" in decision.reason
    # It starts afresh: the period counts from this attempt.
    clock.advance(INITIAL - 1)
    assert attempt(grey).action == DEFER
    clock.advance(1)
    assert attempt(grey).action == PASS


def test_a_pass_record_is_renewed_on_each_use_and_expires_unused(grey, store, clock):
    attempt(grey)
    clock.advance(INITIAL)
    assert attempt(grey).action == PASS
    # Used every 30 days, it outlives the 36-day Pass Record Lifetime many times over.
    for _ in range(4):
        clock.advance(30 * DAY)
        decision = attempt(grey)
        assert decision.action == PASS and decision.reason == "passed before"
    # Unused for longer than the lifetime, it is gone: greylisted again.
    clock.advance(PASS_LIFE + 1)
    assert greylist.passed_count(store, clock.now) == 0
    assert attempt(grey).action == DEFER


def test_a_recently_renewed_pass_is_answered_without_a_write(grey, store, clock):
    attempt(grey)
    clock.advance(INITIAL)
    assert attempt(grey).action == PASS

    def last_seen():
        return store.db.execute("SELECT last_seen FROM greylist_triplets").fetchone()[0]
    renewed = last_seen()
    changes = store.db.conn.total_changes
    clock.advance(greylist.RENEW_SECONDS / 2)
    assert attempt(grey).action == PASS
    assert (last_seen(), store.db.conn.total_changes) == (renewed, changes)
    # Past the renewal interval it is written again.
    clock.advance(greylist.RENEW_SECONDS)
    assert attempt(grey).action == PASS and last_seen() == clock.now


def test_prune_removes_only_what_expired(grey, store, clock):
    attempt(grey, recipient="old-pending@example.com")
    attempt(grey, recipient="passed@example.com")
    clock.advance(INITIAL)
    attempt(grey, recipient="passed@example.com")
    clock.advance(LIFETIME - INITIAL + 1)
    attempt(grey, recipient="new-pending@example.com")
    assert grey.prune() == 1
    left = {r for (r,) in store.db.execute("SELECT recipient FROM greylist_triplets")}
    assert left == {"passed@example.com", "new-pending@example.com"}
    clock.advance(PASS_LIFE + 1)
    assert grey.prune() == 3       # the passed triplet, the pending one, and its network's count
    assert store.db.execute("SELECT COUNT(*) FROM greylist_triplets").fetchone()[0] == 0
    assert store.db.execute("SELECT COUNT(*) FROM greylist_networks").fetchone()[0] == 0


def test_prune_if_due_runs_at_most_every_few_minutes_and_is_bounded(grey, store, clock):
    def rows():
        return store.db.execute("SELECT COUNT(*) FROM greylist_triplets").fetchone()[0]

    assert grey.prune_if_due() == 0           # ran: nothing had expired
    for n in range(3):                        # attempts long past their lifetime
        grey.decide("192.0.2.7", "a@sender.test", f"r{n}@example.com",
                    now=clock.now - LIFETIME - 10)
    clock.advance(greylist.PRUNE_EVERY - 1)
    assert grey.prune_if_due() == 0 and rows() == 3    # not due yet
    clock.advance(1)
    assert grey.prune(limit=2) == 2 and rows() == 1    # one cleanup removes at most `limit`
    clock.advance(greylist.PRUNE_EVERY)
    assert grey.prune_if_due() == 1 and rows() == 0


# ---- auto-whitelist --------------------------------------------------------------------

def pass_triplets(grey, clock, client, count, start=0):
    for n in range(start, start + count):
        assert attempt(grey, client=client, recipient=f"user{n}@example.com").action == DEFER
    clock.advance(INITIAL)
    for n in range(start, start + count):
        assert attempt(grey, client=client, recipient=f"user{n}@example.com").action == PASS


def test_a_network_that_passed_n_triplets_skips_the_greylist(grey, store, clock):
    pass_triplets(grey, clock, "198.51.100.10", 4)
    assert greylist.whitelisted_networks(store, clock.now) == []
    assert attempt(grey, client="198.51.100.10", recipient="new@example.com").action == DEFER
    pass_triplets(grey, clock, "198.51.100.11", 1, start=4)
    [listed] = greylist.whitelisted_networks(store, clock.now)
    assert (listed.network, listed.passed, listed.whitelisted) == ("198.51.100.0/24", 5, clock.now)
    decision = attempt(grey, client="198.51.100.200", sender="anyone@else.test",
                       recipient="someone@example.com")
    assert decision.action == PASS and "auto-whitelisted" in decision.reason
    assert greylist.counts(store, clock.now) == greylist.Counts(pending=1, passed=5, whitelisted=1)
    # Whitelisted while it sends; unused past the Pass Record Lifetime, greylisted again.
    clock.advance(PASS_LIFE - 1)
    assert attempt(grey, client="198.51.100.9", recipient="x@example.com").action == PASS
    clock.advance(PASS_LIFE + 1)
    assert attempt(grey, client="198.51.100.9", recipient="y@example.com").action == DEFER


def test_auto_whitelist_zero_turns_it_off(grey, store, clock):
    store.set("antispam.greylist_auto_whitelist", "0")
    pass_triplets(grey, clock, "198.51.100.10", 6)
    assert greylist.whitelisted_networks(store, clock.now) == []
    assert attempt(grey, client="198.51.100.10", recipient="new@example.com").action == DEFER


def test_the_periods_are_read_from_the_settings(grey, store, clock):
    store.set_many({"antispam.greylist_initial_min": "1", "antispam.greylist_lifetime_min": "10"})
    attempt(grey)
    clock.advance(59)
    assert attempt(grey).action == DEFER
    clock.advance(1)
    assert attempt(grey).action == PASS
    attempt(grey, recipient="late@example.com")
    clock.advance(10 * MIN + 1)
    assert "expired" in attempt(grey, recipient="late@example.com").reason


# ---- page and CLI functions ------------------------------------------------------------

def test_pass_now_passes_a_pending_triplet_without_counting_for_the_network(grey, store, clock):
    attempt(grey, client="203.0.113.5", sender="SRS0=h=tt=far.test=x@fwd.test")
    [row] = greylist.pending(store, clock.now)
    greylist.pass_now(store, row.network, row.sender, row.recipient, actor="admin", now=clock.now)
    assert greylist.pending(store, clock.now) == []
    assert attempt(grey, client="203.0.113.77", sender="x@far.test").action == PASS
    assert store.db.execute("SELECT COUNT(*) FROM greylist_networks").fetchone()[0] == 0
    assert store.audit_log(1)[0]["actor"] == "admin"
    assert "pass now 203.0.113.0/24 <x@far.test> -> <bob@example.com>" in store.audit_log(1)[0]["what"]


def test_forget_one_triplet_or_a_whole_network(grey, store, clock):
    pass_triplets(grey, clock, "198.51.100.10", 5)
    attempt(grey, client="192.0.2.1")
    assert greylist.forget(store, "192.0.2.1", "alice@sender.test", "bob@example.com") == 1
    assert greylist.pending(store, clock.now) == []
    assert greylist.forget(store, "198.51.100.0/24") == 6      # five triplets and the network
    assert greylist.whitelisted_networks(store, clock.now) == []


# ---- the check and its exemptions ------------------------------------------------------

def context(store, client="192.0.2.7", sender="alice@sender.test", recipient="bob@example.com",
            resolver=None, **fields):
    ctx = Context(store.snapshot(), client, resolver=resolver, **fields)
    ctx.stage = "mail"
    ctx.sender, ctx.recipient = sender, recipient
    return ctx


def run(check, ctx):
    ctx.stage = "rcpt"
    return asyncio.run(check.run(ctx))


@pytest.fixture
def on(store):
    store.set("antispam.greylist", "on")
    return store


def test_the_check_defers_with_451_4_7_1_and_counts(on, clock):
    check = greylist_check(on, clock)
    assert (check.name, check.stage, check.order) == ("greylist", "rcpt", Order.REPUTATION + 30)
    ctx = context(on)
    verdict = run(check, ctx)
    assert verdict.reply == "451 4.7.1 Greylisted, try again later"
    assert ctx.results[("greylist", "deferred")] == 1
    clock.advance(INITIAL)
    ctx = context(on)
    assert run(check, ctx) is None
    assert ctx.results[("greylist", "passed")] == 1


def test_a_first_attempt_while_another_process_holds_the_write_lock_leaves_the_loop_serving(
        on, clock):
    import sqlite3
    import time
    check = greylist_check(on, clock)
    other = sqlite3.connect(on.path, timeout=1, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    longest = [0.0]

    async def main():
        ctx = context(on)
        ctx.stage = "rcpt"
        deciding = asyncio.get_running_loop().create_task(check.run(ctx))
        last = time.monotonic()
        for _ in range(100):
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest[0], last = max(longest[0], now - last), now
        assert not deciding.done()          # it waits for the lock, in its thread
        other.execute("COMMIT")
        return await deciding

    try:
        verdict = asyncio.run(main())
    finally:
        other.close()
    assert longest[0] < 0.5, f"the loop was held for {longest[0]:.2f} s"
    assert verdict.reply == "451 4.7.1 Greylisted, try again later"
    assert on.db.execute("SELECT COUNT(*) FROM greylist_triplets").fetchone()[0] == 1


def test_the_check_through_the_policy_chain_names_itself(on, clock):
    verdict = asyncio.run(Policy([greylist_check(on, clock)]).evaluate("rcpt", context(on)))
    assert (verdict.code, verdict.enhanced, verdict.check) == (451, "4.7.1", "greylist")


def test_greylisting_off_defers_nothing(store, clock):
    ctx = context(store)
    assert run(greylist_check(store, clock), ctx) is None
    assert not ctx.results and store.db.execute("SELECT COUNT(*) FROM greylist_triplets"
                                                ).fetchone()[0] == 0


@pytest.mark.parametrize("fields", [{"trusted": True}, {"auth_user": "carol"}])
def test_trusted_and_authenticated_clients_are_exempt(on, clock, fields):
    assert run(greylist_check(on, clock), context(on, **fields)) is None
    assert on.db.execute("SELECT COUNT(*) FROM greylist_triplets").fetchone()[0] == 0


def test_whitelisted_mail_is_exempt(on, clock):
    ctx = context(on)
    ctx.whitelisted = True
    assert run(greylist_check(on, clock), ctx) is None
    assert on.db.execute("SELECT COUNT(*) FROM greylist_triplets").fetchone()[0] == 0


@pytest.fixture
def dns_server(tmp_path):
    # mx.provider.test <-> 127.0.0.9 both ways; 127.0.0.10 claims liar.test,
    # which points elsewhere; 127.0.0.12 has no PTR at all.
    server = DnsServer(tmp_path / "dns", [
        "--host-record=mx.provider.test,127.0.0.9",
        "--ptr-record=10.0.0.127.in-addr.arpa,liar.test",
        "--host-record=liar.test,127.0.0.11",
    ], probe="mx.provider.test").start()
    yield server
    server.stop()


@pytest.fixture
def resolver():
    made = Resolver()
    yield made
    made.close()


def spf_context(store, client, resolver, spf_result="pass"):
    ctx = context(store, client=client, resolver=resolver)
    if spf_result:
        ctx.add_auth_result("spf", spf_result, smtp_mailfrom="alice@sender.test")
    return ctx


def test_spf_pass_from_a_forward_confirmed_client_is_exempt(on, clock, dns_server, resolver):
    on.set_many({**{k: str(v) for k, v in dns_server.settings.items()},
                 "antispam.greylist_exempt_spf_fcrdns": "on"})
    check = greylist_check(on, clock)
    assert run(check, spf_context(on, "127.0.0.9", resolver)) is None
    assert on.db.execute("SELECT COUNT(*) FROM greylist_triplets").fetchone()[0] == 0
    # Without an SPF pass (or with the core's SPF check off: no result at all) it is greylisted.
    assert run(check, spf_context(on, "127.0.0.9", resolver, "softfail")).code == 451
    assert run(check, spf_context(on, "127.0.0.9", resolver, None)).code == 451


@pytest.mark.parametrize("client", ["127.0.0.10", "127.0.0.12"])
def test_spf_pass_without_forward_confirmed_dns_is_greylisted(on, clock, dns_server, resolver,
                                                              client):
    on.set_many({**{k: str(v) for k, v in dns_server.settings.items()},
                 "antispam.greylist_exempt_spf_fcrdns": "on"})
    assert run(greylist_check(on, clock), spf_context(on, client, resolver)).code == 451


def test_the_spf_exemption_is_off_unless_turned_on(on, clock, dns_server, resolver):
    on.set_many({k: str(v) for k, v in dns_server.settings.items()})
    assert run(greylist_check(on, clock), spf_context(on, "127.0.0.9", resolver)).code == 451


def test_the_spf_exemption_can_be_turned_off(on, clock, dns_server, resolver):
    on.set_many({**{k: str(v) for k, v in dns_server.settings.items()},
                 "antispam.greylist_exempt_spf_fcrdns": "off"})
    assert run(greylist_check(on, clock), spf_context(on, "127.0.0.9", resolver)).code == 451


def test_a_client_without_an_ip_address_is_left_alone(on, clock):
    assert run(greylist_check(on, clock), context(on, client="")) is None


def test_triplet_helper_normalises_all_three():
    assert triplet("::ffff:10.1.2.3", "<BTV1==abc==Jo@X.test>", "<Bob@Example.com>") == \
        greylist.Triplet("10.1.2.0/24", "jo@x.test", "bob@example.com")


def test_one_network_cannot_fill_the_greylist_or_push_out_others(grey, store, clock, monkeypatch):
    first = attempt(grey, client="198.51.100.9", sender="real@sender.test")
    assert first.action == DEFER
    for n in range(greylist.PENDING_PER_NETWORK + 10):
        attempt(grey, client="192.0.2.7", recipient=f"guess{n}@example.com")
    pending = dict(store.db.execute("SELECT network, COUNT(*) FROM greylist_triplets "
                                    "WHERE passed IS NULL GROUP BY network").fetchall())
    assert pending["192.0.2.0/24"] == greylist.PENDING_PER_NETWORK
    over = attempt(grey, client="192.0.2.7", recipient="one-more@example.com")
    assert over.action == DEFER and "not recorded" in over.reason
    # The real sender's retry still passes.
    clock.advance(INITIAL)
    assert attempt(grey, client="198.51.100.9", sender="real@sender.test").action == PASS
    # And the total cap holds across networks.
    monkeypatch.setattr(greylist, "PENDING_TOTAL", pending["192.0.2.0/24"])
    assert "not recorded" in attempt(grey, client="203.0.113.5").reason


def test_a_lifetime_shorter_than_the_initial_period_still_lets_a_retry_pass(grey, store, clock):
    store.set_many({"antispam.greylist_initial_min": "60", "antispam.greylist_lifetime_min": "10"})
    attempt(grey)
    clock.advance(61 * 60)
    assert attempt(grey).action == PASS
