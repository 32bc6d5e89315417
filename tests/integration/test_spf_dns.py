"""SPF and the SPF bypass's MX hosts against a real DNS server: dnsmasq on
loopback serving SPF records for each result, a record past the lookup
limit, MX and PTR records, and a zone forwarded to a server that never
answers."""

import asyncio
import socket
import time

import pytest

from firmware.mail.resolver import Resolver
from firmware.mail.verify import spf_check
from firmware.mail.verify.spf_check import SpfOutcome, check, own_mx_addresses
from tests.support.dnsmasq import DnsServer

INCLUDES = 11   # one more than RFC 7208 4.6.4 allows
# The silent server has an address of its own: a port number picked for it
# may be the one picked for dnsmasq on 127.0.0.1.
SILENT_HOST = "127.0.0.2"


def txt(name: str, text: str) -> str:
    # On its command line dnsmasq keeps quotes as part of the text, and a
    # comma starts the record's next string.
    assert "," not in text and '"' not in text
    return f"--txt-record={name},{text}"


def records(silent_port: int) -> list[str]:
    many = " ".join(f"include:i{n}.many.test" for n in range(INCLUDES))
    return [
        "--host-record=probe.test,127.0.0.9",
        txt("pass.test", "v=spf1 ip4:127.0.0.0/8 -all"),
        txt("fail.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt("softfail.test", "v=spf1 ip4:192.0.2.1 ~all"),
        txt("neutral.test", "v=spf1 ?all"),
        "--host-record=none.test,127.0.0.10",
        txt("many.test", f"v=spf1 {many} -all"),
        *[txt(f"i{n}.many.test", f"v=spf1 ip4:192.0.2.{n + 1} -all") for n in range(INCLUDES)],
        txt("void.test", "v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test ip4:127.0.0.1 -all"),
        txt("include.test", "v=spf1 include:pass.test -all"),
        txt("redirect.test", "v=spf1 redirect=fail.test"),
        txt("mx.test", "v=spf1 mx -all"),
        "--mx-host=mx.test,mail.mx.test,10", "--host-record=mail.mx.test,127.0.0.42",
        txt("ptr.test", "v=spf1 ptr -all"),
        "--host-record=mail.ptr.test,127.0.0.44",
        "--mx-host=office.test,mx1.office.test,10", "--mx-host=office.test,mx2.office.test,20",
        "--host-record=mx1.office.test,127.0.0.31",
        "--host-record=mx2.office.test,127.0.0.32,fd00::32",
        "--mx-host=nomx-hosts.test,gone.nomx-hosts.test,10",
        f"--server=/slow.test/{SILENT_HOST}#{silent_port}",
        # Everything else under .test does not exist, rather than "no server to ask".
        "--local=/test/",
    ]


@pytest.fixture(scope="module")
def silent_port():
    """A UDP port that takes queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((SILENT_HOST, 0))
    yield sock.getsockname()[1]
    sock.close()


def start_dns_server(directory, silent_port) -> DnsServer:
    return DnsServer(directory, records(silent_port), probe="probe.test").start()


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory, silent_port):
    # Shared by the module's tests, which only read from it.
    server = start_dns_server(tmp_path_factory.mktemp("dns"), silent_port)
    yield server
    server.stop()


@pytest.fixture
def own_dns_server(tmp_path, silent_port):
    """One a test may stop."""
    server = start_dns_server(tmp_path / "dns", silent_port)
    yield server
    server.stop()


@pytest.fixture
def resolver():
    instance = Resolver()
    yield instance
    instance.close()


@pytest.fixture
def settings(dns_server):
    return {**dns_server.settings, "email.domain": "office.test"}


@pytest.fixture(autouse=True)
def empty_mx_cache(monkeypatch):
    monkeypatch.setattr(spf_check, "_mx_cache", {})
    monkeypatch.setattr(spf_check, "_mx_last_good", {})


def spf(settings, resolver, sender, client_ip="127.0.0.1", helo="client.test", budget=8.0):
    return asyncio.run(check(client_ip, sender, helo, settings, resolver, budget))


@pytest.mark.parametrize("domain, client_ip, result", [
    ("pass.test", "127.0.0.1", "pass"),
    ("fail.test", "127.0.0.1", "fail"),
    ("softfail.test", "127.0.0.1", "softfail"),
    ("neutral.test", "127.0.0.1", "neutral"),
    ("none.test", "127.0.0.1", "none"),
    ("nowhere.test", "127.0.0.1", "none"),
    ("include.test", "127.0.0.1", "pass"),
    ("redirect.test", "127.0.0.1", "fail"),
    ("mx.test", "127.0.0.42", "pass"),
    ("mx.test", "127.0.0.43", "fail"),
    ("ptr.test", "127.0.0.44", "pass"),
    ("ptr.test", "127.0.0.45", "fail"),
])
def test_results(settings, resolver, domain, client_ip, result):
    outcome = spf(settings, resolver, f"someone@{domain}", client_ip)
    assert (outcome.result, outcome.domain) == (result, domain)


def test_fail_says_why(settings, resolver):
    assert spf(settings, resolver, "someone@fail.test") == \
        SpfOutcome("fail", "SPF fail - not authorized", "fail.test")


def test_a_null_sender_is_checked_as_postmaster_at_the_helo_name(settings, resolver):
    assert spf(settings, resolver, "", helo="pass.test").result == "pass"
    assert spf(settings, resolver, "", helo="fail.test") == \
        SpfOutcome("fail", "SPF fail - not authorized", "fail.test")


def test_more_than_ten_lookups_is_a_permerror(settings, resolver):
    outcome = spf(settings, resolver, "someone@many.test")
    assert outcome.result == "permerror"
    assert "Too many DNS lookups" in outcome.explanation


def test_more_than_two_void_lookups_is_a_permerror(settings, resolver):
    # The record would pass 127.0.0.1 at its end: the limit stops it before.
    outcome = spf(settings, resolver, "someone@void.test")
    assert outcome.result == "permerror"
    assert "Void lookup limit of 2 exceeded" in outcome.explanation


def test_a_server_that_never_answers_is_a_temperror_within_the_budget(settings, resolver):
    started = time.monotonic()
    outcome = spf(settings, resolver, "someone@slow.test", budget=2.0)
    elapsed = time.monotonic() - started
    assert outcome.result == "temperror"
    assert "slow.test" in outcome.explanation
    assert elapsed < 2.5


def test_the_settings_dns_servers_are_used(settings, resolver, silent_port):
    # The same question put to a server that never answers: the check asks
    # the configured server, not the system's.
    elsewhere = {**settings, "dns.nameservers": SILENT_HOST, "dns.port": silent_port}
    assert spf(elsewhere, resolver, "someone@pass.test", budget=1.0).result == "temperror"
    assert spf(settings, resolver, "someone@pass.test").result == "pass"


# ---- the Domain Name's own MX hosts ---------------------------------------------------------

def test_own_mx_addresses_are_the_mx_hosts_addresses(settings, resolver):
    assert asyncio.run(own_mx_addresses(settings, resolver)) == \
        frozenset({"127.0.0.31", "127.0.0.32", "fd00::32"})


def test_no_mx_hosts_no_addresses(settings, resolver):
    for domain in ("none.test", "nowhere.test", "nomx-hosts.test", "*"):
        assert asyncio.run(own_mx_addresses({**settings, "email.domain": domain}, resolver)) \
            == frozenset(), domain


def test_own_mx_addresses_are_cached_and_survive_a_dns_failure(own_dns_server, monkeypatch):
    settings = {**own_dns_server.settings, "email.domain": "office.test"}
    clock = [1000.0]
    monkeypatch.setattr(spf_check, "_now", lambda: clock[0])
    expected = frozenset({"127.0.0.31", "127.0.0.32", "fd00::32"})
    first = Resolver()
    try:
        assert asyncio.run(own_mx_addresses(settings, first)) == expected
    finally:
        first.close()
    own_dns_server.stop()

    # Fresh resolvers, so that no answer can come from a resolver's cache.
    def lookup_now():
        fresh = Resolver()
        try:
            return asyncio.run(own_mx_addresses(settings, fresh, budget=0.5))
        finally:
            fresh.close()

    clock[0] += spf_check.MX_CACHE_SECONDS - 1
    assert lookup_now() == expected                 # from the module's cache
    clock[0] += 2
    assert lookup_now() == expected                 # DNS fails: the last good set
    key = ("office.test", settings["dns.nameservers"], settings["dns.port"])
    assert spf_check._mx_cache[key][0] == clock[0] + spf_check.MX_RETRY_SECONDS


def test_a_dns_failure_with_nothing_known_is_no_addresses(settings, resolver, silent_port):
    silent = {**settings, "dns.nameservers": SILENT_HOST, "dns.port": silent_port}
    assert asyncio.run(own_mx_addresses(silent, resolver, budget=0.5)) == frozenset()
