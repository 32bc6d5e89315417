"""DNS RBL filters and Reverse DNS Required against a real DNS server
(dnsmasq on loopback): the checks in-process through the policy chain with
the box's resolver, and once through a running licensed box with SMTP
clients from different loopback addresses.

The DNS server holds:
  bl.test       RFC 5782's entries (127.0.0.2 listed, 127.0.0.1 not), client
                127.0.0.7 answered 127.0.0.2, 127.0.0.10 answered 127.0.0.10
                (PBL-style), 127.0.0.20 answered 127.255.255.254 (refusal)
  broken.test   lists every address (127.0.0.1 included)
  refuse.test   answers 127.255.255.254 to everything
  PTRs          127.0.0.3 -> mx.good.test -> 127.0.0.3 (forward-confirmed);
                127.0.0.4 -> liar.test -> 127.0.0.99 (mismatched);
                127.0.0.5 none; 127.0.0.9 forwarded to a server that never
                answers (a DNS timeout)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import sqlite3

import pytest

from firmware.mail.policy import Context, Policy
from firmware.mail.resolver import Resolver
from softpaks.antispam import dnsbl, rdns
from softpaks.antispam.settings import DNSBL, REVERSE_DNS_FORWARD_CONFIRMED, REVERSE_DNS_REQUIRED
from tests.support.dnsmasq import DnsServer
from tests.support.net import free_port, wait_until


@pytest.fixture(scope="module")
def silent_dns():
    """A UDP socket that takes DNS queries and never answers them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="module")
def dns(tmp_path_factory, silent_dns):
    server = DnsServer(tmp_path_factory.mktemp("dns"), [
        "--host-record=probe.test,127.0.0.1",
        # Names not given below are NXDOMAIN, not "no server for this".
        "--local=/test/", "--local=/0.0.127.in-addr.arpa/",
        "--address=/2.0.0.127.bl.test/127.0.0.2",
        "--address=/7.0.0.127.bl.test/127.0.0.2",
        "--address=/10.0.0.127.bl.test/127.0.0.10",
        "--address=/20.0.0.127.bl.test/127.255.255.254",
        "--address=/broken.test/127.0.0.2",
        "--address=/refuse.test/127.255.255.254",
        "--host-record=mx.good.test,127.0.0.3",
        "--ptr-record=4.0.0.127.in-addr.arpa,liar.test", "--host-record=liar.test,127.0.0.99",
        f"--server=/9.0.0.127.in-addr.arpa/127.0.0.1#{silent_dns}",
    ], probe="probe.test").start()
    yield server
    server.stop()


def settings(dns_server, **values):
    return {**dns_server.settings, DNSBL: "", REVERSE_DNS_REQUIRED: False,
            REVERSE_DNS_FORWARD_CONFIRMED: False, **values}


def zones_on(store, dns_server, text):
    """The zones in the store too (the page reads them there) and the settings the check sees."""
    store.set(DNSBL, text)
    return settings(dns_server, **{DNSBL: text})


class Clocks:
    """The monitor's wall clock and its table-rereading clock, moved by hand."""

    def __init__(self):
        self.now = 2_000_000_000.0
        self.mono = 1000.0

    def monitor(self, store):
        return dnsbl.ZoneMonitor(store, clock=lambda: self.now, monotonic=lambda: self.mono)


def rcpt(policy, values, client_ip, resolver, **context):
    ctx = Context(settings=values, client_ip=client_ip, resolver=resolver,
                  sender="someone@outside.test", recipient="jane@example.com", **context)
    verdict = asyncio.run(policy.evaluate("rcpt", ctx))
    return verdict, ctx


def reply(verdict):
    return None if verdict is None else verdict.reply


# ---- DNSBL ------------------------------------------------------------------------------------
def test_a_listed_client_is_refused_and_a_clean_one_passes(store, dns):
    policy = Policy([dnsbl.dnsbl_check(store)])
    values = zones_on(store, dns, "bl.test")
    resolver = Resolver()
    verdict, ctx = rcpt(policy, values, "127.0.0.7", resolver)
    assert reply(verdict) == "554 5.7.1 Service unavailable; client [127.0.0.7] blocked using bl.test"
    assert verdict.check == "dnsbl"
    assert ctx.results[("dnsbl", "rejected")] == 1
    # The zone was tested before its first answer counted.
    [health] = dnsbl.zone_status(store)
    assert health.healthy is True and health.checked is not None and "RFC 5782" in health.detail
    verdict, ctx = rcpt(policy, values, "127.0.0.3", resolver)
    assert verdict is None and ctx.results[("dnsbl", "passed")] == 1
    # 127.0.0.2 itself, the RFC's test entry, is listed too.
    assert rcpt(policy, values, "127.0.0.2", resolver)[0].code == 554


def test_the_answer_is_kept_for_the_session_and_not_asked_again(store, dns):
    policy = Policy([dnsbl.dnsbl_check(store)])
    values = zones_on(store, dns, "bl.test")
    assert rcpt(policy, values, "127.0.0.7", Resolver())[0].code == 554
    # A resolver with an empty cache pointed at nothing: only the check's own memory answers.
    nowhere = {**values, "dns.port": free_port()}
    assert rcpt(policy, nowhere, "127.0.0.7", Resolver())[0].code == 554


def test_exempt_clients_are_not_asked(store, dns):
    policy = Policy([dnsbl.dnsbl_check(store)])
    values = zones_on(store, dns, "bl.test")
    for exempt in ({"trusted": True}, {"auth_user": "bob"}, {"whitelisted": True}):
        verdict, ctx = rcpt(policy, values, "127.0.0.7", Resolver(), **exempt)
        assert verdict is None and not ctx.results, exempt
    assert dnsbl.zone_status(store)[0].checked is None   # nothing was even tested


def test_pbl_style_codes_count_only_when_configured(store, dns):
    policy = Policy([dnsbl.dnsbl_check(store)])
    resolver = Resolver()
    assert rcpt(policy, zones_on(store, dns, "bl.test"), "127.0.0.10", resolver)[0] is None
    wide = Policy([dnsbl.dnsbl_check(store)])
    verdict, _ = rcpt(wide, zones_on(store, dns, "bl.test=127.0.0.2-12"), "127.0.0.10",
                      resolver)
    assert verdict.code == 554 and "blocked using bl.test" in verdict.text
    listed_two_ways = Policy([dnsbl.dnsbl_check(store)])
    values = zones_on(store, dns, "bl.test=127.0.0.2;127.0.0.10")
    assert rcpt(listed_two_ways, values, "127.0.0.10", resolver)[0].code == 554


def test_a_refusal_of_service_answer_never_lists_and_warns(store, dns):
    policy = Policy([dnsbl.dnsbl_check(store)])
    values = zones_on(store, dns, "bl.test=127.0.0.2-255")
    verdict, ctx = rcpt(policy, values, "127.0.0.20", Resolver())
    assert verdict is None and ctx.results[("dnsbl", "passed")] == 1
    [zone] = dnsbl.zone_status(store)
    assert zone.healthy is True    # the list works; it refused this one answer
    assert "127.255.255.254" in zone.warning and "refuses to serve this box" in zone.warning
    assert zone.warned is not None
    assert dnsbl.needs_attention(store) == [zone]


def test_a_zone_that_refuses_service_fails_its_health_test(store, dns):
    [health] = asyncio.run(dnsbl.test_zones(store, zones_on(store, dns, "refuse.test"),
                                            Resolver()))
    assert health.healthy is False and "127.255.255.254" in health.detail
    assert health.warning and health.warned is not None


def test_a_zone_that_lists_the_world_is_broken_and_stops_deciding(store, dns):
    clocks = Clocks()
    policy = Policy([dnsbl.dnsbl_check(store, clocks.monitor(store))])
    values = zones_on(store, dns, "broken.test\nbl.test")
    tested = asyncio.run(dnsbl.test_zones(store, values, Resolver()))
    by_zone = {z.zone: z for z in tested}
    assert by_zone["broken.test"].healthy is False
    assert "lists 127.0.0.1" in by_zone["broken.test"].detail
    assert by_zone["bl.test"].healthy is True
    # broken.test would list 127.0.0.3 too; it does not decide, bl.test does not list it.
    verdict, ctx = rcpt(policy, values, "127.0.0.3", Resolver())
    assert verdict is None and ctx.results[("dnsbl", "passed")] == 1
    # bl.test still decides alongside it.
    assert rcpt(policy, values, "127.0.0.7", Resolver())[0].text.endswith("using bl.test")


def test_a_broken_zone_decides_again_once_it_passes(store, dns, tmp_path):
    clocks = Clocks()
    monitor = clocks.monitor(store)
    policy = Policy([dnsbl.dnsbl_check(store, monitor)])
    values = zones_on(store, dns, "broken.test")
    asyncio.run(dnsbl.test_zones(store, values, Resolver(), clock=lambda: clocks.now))
    assert rcpt(policy, values, "127.0.0.3", Resolver())[0] is None
    # The list is mended: now it lists only its test entry and 127.0.0.3.
    mended = DnsServer(tmp_path / "mended", [
        "--host-record=probe.test,127.0.0.1", "--local=/test/",
        "--address=/2.0.0.127.broken.test/127.0.0.2", "--address=/3.0.0.127.broken.test/127.0.0.2",
    ], probe="probe.test").start()
    try:
        values = settings(mended, **{DNSBL: "broken.test"})
        # Ten minutes on, the broken zone is tested again by the next mail, in the background.
        clocks.now += dnsbl.RETEST_UNHEALTHY_SECONDS + 1
        clocks.mono += dnsbl.TABLE_SECONDS + 1

        async def mail_then_wait_for_the_test():
            resolver = Resolver()
            ctx = Context(settings=values, client_ip="127.0.0.3", resolver=resolver)
            first = await policy.evaluate("rcpt", ctx)
            assert monitor.under_test() <= {"broken.test"}
            for _ in range(200):
                if not monitor.under_test():
                    break
                await asyncio.sleep(0.05)
            return first, await policy.evaluate("rcpt", Context(settings=values,
                                                                client_ip="127.0.0.3",
                                                                resolver=Resolver()))
        first, second = asyncio.run(mail_then_wait_for_the_test())
        assert first is None               # the old verdict stood while the test ran
        [health] = dnsbl.zone_status(store)
        assert health.healthy is True and health.checked == clocks.now
        assert second is not None and second.text.endswith("using broken.test")
    finally:
        mended.stop()


def test_a_zone_that_does_not_answer_never_defers_mail(store, dns, silent_dns):
    clocks = Clocks()
    monitor = clocks.monitor(store)
    policy = Policy([dnsbl.dnsbl_check(store, monitor)])
    values = zones_on(store, dns, "bl.test")
    asyncio.run(dnsbl.test_zones(store, values, Resolver(), clock=lambda: clocks.now))
    silent = {**values, "dns.port": silent_dns}
    verdict, ctx = rcpt(policy, silent, "127.0.0.7", Resolver())
    assert verdict is None
    assert ctx.results[("dnsbl", "passed")] == 1 and ctx.results[("dnsbl", "error")] == 1


# ---- Reverse DNS Required ---------------------------------------------------------------------
def test_ptr_present_absent_and_mismatched(dns):
    policy = Policy(rdns.policy_checks(None))
    plain = settings(dns, **{REVERSE_DNS_REQUIRED: True})
    resolver = Resolver()
    verdict, ctx = rcpt(policy, plain, "127.0.0.3", resolver)
    assert verdict is None and ctx.results[("reverse_dns", "passed")] == 1
    verdict, ctx = rcpt(policy, plain, "127.0.0.5", resolver)
    assert reply(verdict) == ("550 5.7.25 Client host rejected: cannot find your reverse "
                              "hostname, [127.0.0.5]")
    assert verdict.check == "reverse_dns" and ctx.results[("reverse_dns", "rejected")] == 1
    # A PTR whose name points elsewhere is enough without the stricter option...
    assert rcpt(policy, plain, "127.0.0.4", resolver)[0] is None
    # ...and refused with it, saying so.
    strict = {**plain, REVERSE_DNS_FORWARD_CONFIRMED: True}
    verdict, _ = rcpt(policy, strict, "127.0.0.4", resolver)
    assert verdict.code == 550 and verdict.enhanced == "5.7.25"
    assert "liar.test does not resolve back to [127.0.0.4]" in verdict.text
    assert rcpt(policy, strict, "127.0.0.3", resolver)[0] is None


def test_ptr_lookup_timeout_defers(dns):
    policy = Policy(rdns.policy_checks(None))
    verdict, ctx = rcpt(policy, settings(dns, **{REVERSE_DNS_REQUIRED: True}), "127.0.0.9",
                        Resolver())
    assert verdict.code == 450 and verdict.enhanced == "4.7.25", verdict
    assert ctx.results[("reverse_dns", "deferred")] == 1


def test_reverse_dns_exemptions_and_the_setting_off(dns):
    policy = Policy(rdns.policy_checks(None))
    on = settings(dns, **{REVERSE_DNS_REQUIRED: True})
    for exempt in ({"trusted": True}, {"auth_user": "bob"}, {"whitelisted": True}):
        assert rcpt(policy, on, "127.0.0.5", Resolver(), **exempt)[0] is None, exempt
    assert rcpt(policy, settings(dns), "127.0.0.5", Resolver())[0] is None


def test_forward_confirmed_name(dns):
    values = settings(dns)

    def name(ip):
        return asyncio.run(rdns.forward_confirmed_name(ip, values, Resolver()))
    assert name("127.0.0.3") == "mx.good.test"
    assert name("127.0.0.4") is None      # mismatched
    assert name("127.0.0.5") is None      # no PTR
    assert name("127.0.0.9") is None      # DNS could not tell
    assert name("not an address") is None


# ---- through a running licensed box -----------------------------------------------------------
def rcpt_reply(box, client_ip):
    with smtplib.SMTP(box.host, box.smtp_port, timeout=60, source_address=(client_ip, 0),
                      local_hostname="mx.outside.test") as client:
        client.ehlo("mx.outside.test")
        assert client.docmd("MAIL FROM:<someone@outside.test>")[0] == 250
        code, text = client.docmd("RCPT TO:<jane@example.com>")
        return code, text.decode()


def counted(box, name):
    with sqlite3.connect(box.data / "gatebox.db") as db:
        return db.execute("SELECT SUM(count) FROM check_stats WHERE name = ?",
                          [name]).fetchone()[0] or 0


def test_through_the_box(make_box, licensed, dns):
    box = make_box(**{"email.server_type": "relay",
                      "email.mail_server_address": f"127.0.0.1:{free_port()}",
                      "email.trusted_networks": "127.0.0.1/32", **dns.settings,
                      DNSBL: "bl.test\nbroken.test", REVERSE_DNS_REQUIRED: "on",
                      REVERSE_DNS_FORWARD_CONFIRMED: "on"})
    # Unlicensed, nothing is filtered.
    box.start()
    assert rcpt_reply(box, "127.0.0.7")[0] == 250
    box.stop()
    licensed(box.data, antispam=None)
    box.start()
    code, text = rcpt_reply(box, "127.0.0.7")
    assert (code, text) == (554, "5.7.1 Service unavailable; client [127.0.0.7] blocked using "
                                 "bl.test")
    assert rcpt_reply(box, "127.0.0.3")[0] == 250        # FCrDNS, not listed; broken.test ignored
    code, text = rcpt_reply(box, "127.0.0.5")
    assert code == 550 and text.startswith("5.7.25 "), text
    code, text = rcpt_reply(box, "127.0.0.4")
    assert code == 550 and "does not resolve back" in text, text
    assert rcpt_reply(box, "127.0.0.1")[0] == 250         # Trusted Networks
    with sqlite3.connect(box.data / "gatebox.db") as db:
        health = dict(db.execute("SELECT zone, healthy FROM dnsbl_zones"))
    assert health == {"bl.test": 1, "broken.test": 0}
    wait_until(lambda: counted(box, "dnsbl=rejected") == 1 and
               counted(box, "reverse_dns=rejected") == 2, 30, what="the layers' counters")
    assert "blocked using bl.test" in box.log()
