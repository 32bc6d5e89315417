"""The "my MX servers" bypass: with ETRN or Mail-bagging the ISP's mail
server delivers the office's held mail as its secondary MX, so SPF and
greylisting let it through like the Domain Name's own MX hosts; in any
other server type it is a stranger. Names are resolved by a real DNS
server (dnsmasq on loopback), and the SPF check and the greylist are the
real ones on a real store."""

from __future__ import annotations

import asyncio

import pytest

from firmware.config import Store
from firmware.mail.policy import Context
from firmware.mail.resolver import Resolver
from firmware.mail.verify import checks, my_mx, spf_check
from softpaks.antispam.greylist import greylist_check
from tests.support.dnsmasq import DnsServer
from tests.support.net import free_port

ISP = "127.0.0.2"
ISP_V6 = "fd00::2"
OWN_MX, OWN_MX_V6 = "127.0.0.25", "fd00::25"
STRANGER = "127.0.0.77"
SENDER = "alice@sender.test"


@pytest.fixture
def store(tmp_path, box_serial, licensed):
    """A store with the Mail Server licensed: ETRN and Mail-bagging need it."""
    Store.create(tmp_path / "data").close()
    licensed(tmp_path / "data", mailserver=None)
    opened = Store(tmp_path / "data")
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory):
    # smtp.isp.test is the ISP's server (IPv4 and IPv6); the Domain Name's
    # own MX is mx1.example.com; sender.test forbids everyone by SPF, so
    # only a bypass lets its mail through the SPF check.
    server = DnsServer(tmp_path_factory.mktemp("dns"), [
        f"--host-record=smtp.isp.test,{ISP},{ISP_V6}",
        "--mx-host=example.com,mx1.example.com,10",
        # Both families: dnsmasq refuses (not "no data") a type a name lacks.
        f"--host-record=mx1.example.com,{OWN_MX},{OWN_MX_V6}",
        "--txt-record=sender.test,v=spf1 -all",
    ], probe="smtp.isp.test").start()
    yield server
    server.stop()


@pytest.fixture
def resolver():
    made = Resolver()
    yield made
    made.close()


@pytest.fixture(autouse=True)
def fresh_spf_caches():
    """SPF results are cached per process: each test asks afresh."""
    spf_check.forget_results()
    yield
    spf_check.forget_results()


def configure(store, server_type: str, isp_server: str, dns: DnsServer | None = None, **more):
    values = {"email.server_type": server_type, "email.isp_server": isp_server, **more}
    if dns is not None:
        values.update({key: str(value) for key, value in dns.settings.items()})
    store.set_many(values, actor="test")
    return store.snapshot()


def isp_addresses(settings, resolver, budget=2.0):
    return asyncio.run(my_mx.isp_server_addresses(settings, resolver, budget))


# ---- which addresses count as the ISP's -----------------------------------------------

@pytest.mark.parametrize("server_type", ["etrn", "mailbag"])
def test_a_literal_address_counts_without_asking_dns(store, server_type):
    settings = configure(store, server_type, f"{ISP}:2525")
    assert isp_addresses(settings, None) == frozenset({ISP})
    settings = configure(store, server_type, f"[{ISP_V6}]:2525")
    assert isp_addresses(settings, None) == frozenset({ISP_V6})


@pytest.mark.parametrize("server_type", ["relay", "standalone", "multidrop", "mirrored"])
def test_only_etrn_and_mail_bagging_trust_the_isp(store, dns_server, resolver, server_type):
    settings = configure(store, server_type, "smtp.isp.test", dns_server)
    assert isp_addresses(settings, resolver) == frozenset()
    settings = configure(store, server_type, ISP)
    assert isp_addresses(settings, resolver) == frozenset()


def test_a_name_is_resolved_to_all_its_addresses(store, dns_server, resolver):
    settings = configure(store, "etrn", "smtp.isp.test:2525", dns_server)
    assert isp_addresses(settings, resolver) == frozenset({ISP, ISP_V6})


def test_no_isp_server_set_trusts_no_one(store, dns_server, resolver):
    settings = configure(store, "etrn", "", dns_server)
    assert isp_addresses(settings, resolver) == frozenset()


def test_an_unknown_name_or_a_dead_dns_server_trusts_no_one(store, dns_server, resolver):
    settings = configure(store, "etrn", "nowhere.isp.test", dns_server)
    assert isp_addresses(settings, resolver) == frozenset()
    # A DNS server that does not answer: a closed UDP port on loopback.
    store.set_many({"dns.nameservers": "127.0.0.1", "dns.port": str(free_port())}, actor="test")
    settings = store.snapshot()
    assert isp_addresses(settings, resolver, budget=0.5) == frozenset()


def test_my_mx_servers_are_the_own_mx_hosts_and_in_etrn_the_isp(store, dns_server, resolver):
    settings = configure(store, "etrn", "smtp.isp.test", dns_server, **{"email.domain": "example.com"})
    found = asyncio.run(my_mx.my_mx_addresses(settings, resolver))
    assert found == frozenset({OWN_MX, OWN_MX_V6, ISP, ISP_V6})
    settings = configure(store, "multidrop", "smtp.isp.test", dns_server)
    assert asyncio.run(my_mx.my_mx_addresses(settings, resolver)) == frozenset({OWN_MX, OWN_MX_V6})


@pytest.mark.parametrize("client, among", [
    (ISP, True), (f"::ffff:{ISP}", True), (ISP_V6, True), (f"{ISP_V6}%lo", True),
    (STRANGER, False), ("", False), ("not an address", False)])
def test_is_among_compares_addresses_not_spellings(client, among):
    assert my_mx.is_among(client, [ISP, ISP_V6]) is among


# ---- the SPF check ---------------------------------------------------------------------

def spf_context(settings, client, resolver):
    ctx = Context(settings, client, resolver=resolver)
    ctx.stage, ctx.sender, ctx.helo = "mail", SENDER, "relay.outside.test"
    return ctx


def run_spf(ctx):
    return asyncio.run(checks.spf().run(ctx))


def spf_settings(store, server_type, dns_server, bypass=True):
    return configure(store, server_type, "smtp.isp.test", dns_server,
                     **{"email.domain": "example.com", "email.spf": "on",
                        "email.spf_bypass": "on" if bypass else "off"})


def test_spf_lets_the_isps_relayed_mail_through_in_etrn(store, dns_server, resolver):
    ctx = spf_context(spf_settings(store, "etrn", dns_server), ISP, resolver)
    assert run_spf(ctx) is None
    assert ctx.results[("spf", "bypassed")] == 1


def test_spf_judges_the_isp_like_anyone_outside_etrn(store, dns_server, resolver):
    ctx = spf_context(spf_settings(store, "multidrop", dns_server), ISP, resolver)
    verdict = run_spf(ctx)
    assert verdict.code == 550 and "SPF" in verdict.reply
    assert ("spf", "bypassed") not in ctx.results


def test_spf_judges_a_stranger_in_etrn(store, dns_server, resolver):
    ctx = spf_context(spf_settings(store, "etrn", dns_server), STRANGER, resolver)
    assert run_spf(ctx).code == 550


def test_spf_bypass_turned_off_judges_the_isp_too(store, dns_server, resolver):
    ctx = spf_context(spf_settings(store, "etrn", dns_server, bypass=False), ISP, resolver)
    assert run_spf(ctx).code == 550


# ---- greylisting -----------------------------------------------------------------------

def greylist_context(settings, client, resolver):
    ctx = Context(settings, client, resolver=resolver)
    ctx.stage, ctx.sender, ctx.recipient = "rcpt", SENDER, "bob@example.com"
    return ctx


def triplets(store) -> int:
    return store.db.execute("SELECT COUNT(*) FROM greylist_triplets").fetchone()[0]


def test_greylisting_passes_the_isp_in_mail_bagging(store, dns_server, resolver):
    store.set("antispam.greylist", "on", actor="test")
    settings = configure(store, "mailbag", "smtp.isp.test:7979", dns_server)
    check = greylist_check(store)
    assert asyncio.run(check.run(greylist_context(settings, ISP, resolver))) is None
    assert triplets(store) == 0
    # Anyone else is greylisted as before.
    assert asyncio.run(check.run(greylist_context(settings, STRANGER, resolver))).code == 451
    assert triplets(store) == 1


def test_greylisting_defers_the_isp_outside_etrn(store, dns_server, resolver):
    store.set("antispam.greylist", "on", actor="test")
    settings = configure(store, "mirrored", "smtp.isp.test", dns_server)
    assert asyncio.run(greylist_check(store).run(greylist_context(settings, ISP, resolver))).code == 451
