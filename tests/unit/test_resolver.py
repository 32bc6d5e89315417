"""The one resolver, against real dnsmasq servers on loopback: answers,
the blocking facade for threads, the cache, a change of DNS servers, the
time budget, and MX lookup for delivery through it."""

import asyncio
import socket
import threading
import time

import pytest

from firmware.mail import mx
from firmware.mail.resolver import NXDOMAIN, DnsFailure, Resolver
from tests.support.dnsmasq import DnsServer
from tests.support.net import wait_until

RECORDS = ["--host-record=probe.test,127.0.0.9",
           "--mx-host=far.test,mx1.far.test,10", "--host-record=mx1.far.test,127.0.0.25",
           "--mx-host=backup.test,b.backup.test,20", "--mx-host=backup.test,a.backup.test,10",
           "--host-record=a.backup.test,127.0.0.31", "--host-record=b.backup.test,127.0.0.32",
           "--mx-host=nullmx.test,.,0", "--local=/nx.test/", "--local=/far.test/"]


@pytest.fixture
def dns_server(tmp_path):
    server = DnsServer(tmp_path / "dns", RECORDS, probe="probe.test").start()
    yield server
    server.stop()


@pytest.fixture
def resolver():
    instance = Resolver()
    yield instance
    instance.close()


@pytest.fixture
def silent_port():
    """A UDP port that takes queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def addresses(answer):
    return sorted(r.address for r in answer)


def test_async_answers_come_from_the_configured_server(dns_server, resolver):
    answer = asyncio.run(resolver.resolve("mx1.far.test", "A", dns_server.settings))
    assert addresses(answer) == ["127.0.0.25"]
    with pytest.raises(NXDOMAIN):
        asyncio.run(resolver.resolve("nothing.nx.test", "A", dns_server.settings))


def test_threads_use_the_blocking_facade_and_share_the_cache(dns_server, resolver):
    results, errors = [], []

    def lookup():
        try:
            results.append(addresses(resolver.resolve_blocking("mx1.far.test", "A",
                                                               dns_server.settings)))
        except Exception as error:
            errors.append(error)
    threads = [threading.Thread(target=lookup) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert errors == [] and results == [["127.0.0.25"]] * 8
    # With the server gone the cached answer is still there.
    dns_server.stop()
    assert addresses(resolver.resolve_blocking("mx1.far.test", "A", dns_server.settings)) == \
        ["127.0.0.25"]


def test_the_blocking_facade_refuses_to_run_on_an_event_loop(dns_server, resolver):
    async def on_loop():
        resolver.resolve_blocking("mx1.far.test", "A", dns_server.settings)
    with pytest.raises(RuntimeError, match="await resolve"):
        asyncio.run(on_loop())


def test_new_dns_servers_rebuild_the_resolver_and_empty_the_cache(tmp_path, dns_server, resolver):
    assert addresses(resolver.resolve_blocking("mx1.far.test", "A", dns_server.settings)) == \
        ["127.0.0.25"]
    other = DnsServer(tmp_path / "other", ["--host-record=probe.test,127.0.0.9",
                                           "--host-record=mx1.far.test,127.0.0.77"],
                      probe="probe.test").start()
    try:
        answer = resolver.resolve_blocking("mx1.far.test", "A", other.settings)
        assert addresses(answer) == ["127.0.0.77"]
    finally:
        other.stop()


def test_a_server_that_does_not_answer_is_a_dns_failure_within_the_budget(resolver, silent_port):
    settings = {"dns.nameservers": "127.0.0.1", "dns.port": silent_port}
    started = time.monotonic()
    with pytest.raises(DnsFailure, match="timed out"):
        asyncio.run(resolver.resolve("far.test", "MX", settings, budget=0.5))
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("domain,expected", [
    ("far.test", [("mx1.far.test", ["127.0.0.25"])]),
    ("backup.test", [("a.backup.test", ["127.0.0.31"]), ("b.backup.test", ["127.0.0.32"])]),
    ("mx1.far.test", [("mx1.far.test", ["127.0.0.25"])]),   # no MX: the implicit MX
])
def test_mx_lookup_for_delivery_goes_through_the_resolver(dns_server, resolver, domain, expected):
    assert mx.mail_hosts(domain, dns_server.settings, resolver) == expected


@pytest.mark.parametrize("domain,permanent", [
    ("nothing.nx.test", True),     # NXDOMAIN
    ("nullmx.test", True),         # RFC 7505 null MX
])
def test_mx_lookup_failures_say_whether_they_are_permanent(dns_server, resolver, domain, permanent):
    with pytest.raises(mx.LookupFailed) as failed:
        mx.mail_hosts(domain, dns_server.settings, resolver)
    assert failed.value.permanent is permanent


def test_mx_lookup_without_an_answer_is_temporary(resolver, silent_port):
    settings = {"dns.nameservers": "127.0.0.1", "dns.port": silent_port}
    with pytest.raises(mx.LookupFailed) as failed:
        mx.mail_hosts("far.test", settings, resolver, budget=0.5)
    assert failed.value.permanent is False


def forget_dnspython_cache(resolver):
    """Only the resolver's own memory of recent answers is left."""
    resolver._cache.flush()


def test_answers_and_negative_answers_are_remembered_in_front_of_dnspythons_cache(dns_server,
                                                                                  resolver):
    settings = dns_server.settings
    first = asyncio.run(resolver.resolve("mx1.far.test", "A", settings))
    with pytest.raises(NXDOMAIN) as before:
        asyncio.run(resolver.resolve("nothing.nx.test", "A", settings))
    dns_server.stop()
    forget_dnspython_cache(resolver)
    assert asyncio.run(resolver.resolve("mx1.far.test", "A", settings)) is first
    with pytest.raises(NXDOMAIN) as again:
        asyncio.run(resolver.resolve("nothing.nx.test", "A", settings))
    # A new exception each time: one raised again and again would pile up tracebacks.
    assert again.value is not before.value
    with pytest.raises(DnsFailure):                 # never asked: the server is gone
        asyncio.run(resolver.resolve("probe.test", "A", settings, budget=0.5))


def test_a_remembered_answer_ends_with_its_ttl(tmp_path):
    server = DnsServer(tmp_path / "dns", RECORDS, probe="probe.test", ttl=1).start()
    resolver = Resolver()
    try:
        answer = asyncio.run(resolver.resolve("mx1.far.test", "A", server.settings))
        assert answer.rrset.ttl == 1
        server.stop()
        forget_dnspython_cache(resolver)

        def forgotten():
            forget_dnspython_cache(resolver)
            try:
                asyncio.run(resolver.resolve("mx1.far.test", "A", server.settings, budget=0.3))
            except DnsFailure:
                return True
            return False
        assert wait_until(forgotten, timeout=10)
    finally:
        server.stop()
        resolver.close()


def test_the_memory_of_recent_answers_is_bounded(dns_server):
    resolver = Resolver(cache_entries=2)
    try:
        for name in ("mx1.far.test", "a.backup.test", "b.backup.test"):
            asyncio.run(resolver.resolve(name, "A", dns_server.settings))
        dns_server.stop()
        forget_dnspython_cache(resolver)
        for name in ("a.backup.test", "b.backup.test"):
            assert asyncio.run(resolver.resolve(name, "A", dns_server.settings))
        with pytest.raises(DnsFailure):                 # the oldest went
            asyncio.run(resolver.resolve("mx1.far.test", "A", dns_server.settings, budget=0.5))
    finally:
        resolver.close()
