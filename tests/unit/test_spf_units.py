"""SPF without a DNS server: the replacement of pyspf's DNSLookup and what
the check makes of pyspf's answers. The resolver here is a small stand-in
that answers from a dict with real dnspython records (no DNS server is
needed to show how records are handed to pyspf); the same paths against a
real server are in tests/integration/test_spf_dns.py."""

import asyncio
import threading

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
import spf

from firmware.mail.resolver import NXDOMAIN, DnsFailure, NoAnswer
from firmware.mail.verify import spf_check
from firmware.mail.verify.spf_check import SpfOutcome, check, own_mx_addresses



@pytest.fixture(autouse=True)
def fresh_results():
    """Each test asks its own records: no result kept from another test."""
    spf_check.forget_results()
    yield
    spf_check.forget_results()

SETTINGS = {"dns.nameservers": "192.0.2.53", "dns.port": 53, "email.domain": "*"}


class ZoneResolver:
    """resolve_blocking answers from `records`: {(name, type): [text, ...]};
    a name with no records at all is NXDOMAIN, a missing type NoAnswer,
    a name in `failing` a DnsFailure."""

    def __init__(self, records: dict, failing=()):
        self.records = {(n.lower(), t): v for (n, t), v in records.items()}
        self.failing = set(failing)
        self.asked: list[tuple[str, str]] = []

    def resolve_blocking(self, name, rdtype, settings, budget):
        assert settings is SETTINGS
        name = name.lower().rstrip(".")
        self.asked.append((name, rdtype))
        if name in self.failing:
            raise DnsFailure(f"DNS lookup of {name}/{rdtype} timed out after {budget:g}s")
        if (name, rdtype) in self.records:
            return [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), text)
                    for text in self.records[(name, rdtype)]]
        if any(n == name for n, _ in self.records):
            raise NoAnswer()
        raise NXDOMAIN()


def run(resolver, client_ip="192.0.2.10", sender="someone@example.test", helo="mx.example.test",
        budget=5.0) -> SpfOutcome:
    return asyncio.run(check(client_ip, sender, helo, SETTINGS, resolver, budget))


# ---- the DNSLookup replacement --------------------------------------------------

def test_pyspf_looks_names_up_through_the_replacement():
    assert spf.DNSLookup is spf_check._dns_lookup


def test_records_are_handed_over_in_pyspfs_shapes():
    resolver = ZoneResolver({
        ("h.test", "A"): ["192.0.2.1"], ("h.test", "AAAA"): ["2001:db8::1"],
        ("h.test", "MX"): ["10 mx1.h.test."],
        ("1.2.0.192.in-addr.arpa", "PTR"): ["host.h.test."],
        ("h.test", "TXT"): ['"v=spf1 " "-all"'],
    })
    lookup = spf_check._ResolverLookup(resolver, SETTINGS)
    assert lookup("h.test", "A", 1) == [(("h.test", "A"), "192.0.2.1")]
    assert lookup("h.test", "AAAA", 1) == [(("h.test", "AAAA"), "2001:db8::1")]
    assert lookup("h.test", "MX", 1) == [(("h.test", "MX"), (10, "mx1.h.test."))]
    assert lookup("1.2.0.192.in-addr.arpa", "PTR", 1) == \
        [(("1.2.0.192.in-addr.arpa", "PTR"), "host.h.test")]
    # A TXT record's strings stay apart; pyspf joins them.
    assert lookup("h.test", "TXT", 1) == [(("h.test", "TXT"), [b"v=spf1 ", b"-all"])]


def test_no_such_name_and_no_data_are_empty_answers():
    lookup = spf_check._ResolverLookup(ZoneResolver({("h.test", "A"): ["192.0.2.1"]}), SETTINGS)
    assert lookup("nothing.test", "TXT", 1) == []
    assert lookup("h.test", "TXT", 1) == []


def test_a_dns_failure_is_pyspfs_temperror():
    lookup = spf_check._ResolverLookup(ZoneResolver({}, failing={"slow.test"}), SETTINGS)
    with pytest.raises(spf.TempError, match="timed out"):
        lookup("slow.test", "TXT", 1)


def test_a_dns_failure_of_a_ptr_lookup_is_no_match():
    # RFC 7208 5.5
    lookup = spf_check._ResolverLookup(
        ZoneResolver({}, failing={"10.2.0.192.in-addr.arpa"}), SETTINGS)
    assert lookup("10.2.0.192.in-addr.arpa", "PTR", 1) == []
    resolver = ZoneResolver({("example.test", "TXT"): ['"v=spf1 ptr ?all"']},
                            failing={"10.2.0.192.in-addr.arpa"})
    assert run(resolver).result == "neutral"


def test_the_lookup_is_per_thread_and_cleared_afterwards():
    resolver = ZoneResolver({("p.test", "TXT"): ['"v=spf1 ip4:192.0.2.0/24 -all"']})
    assert run(resolver, sender="a@p.test").result == "pass"
    assert getattr(spf_check._current, "lookup", None) is None
    assert ("p.test", "TXT") in resolver.asked


def test_concurrent_checks_each_use_their_own_resolver():
    allow = ZoneResolver({("d.test", "TXT"): ['"v=spf1 ip4:192.0.2.10 -all"']})
    deny = ZoneResolver({("d.test", "TXT"): ['"v=spf1 -all"']})

    async def both():
        return await asyncio.gather(*[
            check("192.0.2.10", "a@d.test", "h.test", SETTINGS, r, 5.0)
            for r in (allow, deny) * 10])

    results = [o.result for o in asyncio.run(both())]
    assert results == ["pass", "fail"] * 10


# ---- results -----------------------------------------------------------------------

@pytest.mark.parametrize("record, result", [
    ("v=spf1 ip4:192.0.2.0/24 -all", "pass"),
    ("v=spf1 ip4:198.51.100.1 -all", "fail"),
    ("v=spf1 ~all", "softfail"),
    ("v=spf1 ?all", "neutral"),
    ("v=spf1 ip4:192.0.2.300 -all", "permerror"),
])
def test_results(record, result):
    outcome = run(ZoneResolver({("example.test", "TXT"): [f'"{record}"']}))
    assert outcome.result == result
    assert outcome.domain == "example.test"


def test_no_record_is_none():
    outcome = run(ZoneResolver({("example.test", "A"): ["192.0.2.1"]}))
    assert outcome == SpfOutcome("none", "example.test publishes no SPF record", "example.test")


def test_a_null_sender_is_postmaster_at_the_helo_name():
    resolver = ZoneResolver({("mx.helo.test", "TXT"): ['"v=spf1 ip4:192.0.2.10 -all"']})
    outcome = run(resolver, sender="", helo="mx.helo.test")
    assert outcome.result == "pass"
    assert outcome.domain == "mx.helo.test"
    assert resolver.asked[0] == ("mx.helo.test", "TXT")


def test_the_fail_explanation_is_the_domains_and_made_printable():
    resolver = ZoneResolver({
        ("example.test", "TXT"): ['"v=spf1 -all exp=why.example.test"'],
        ("why.example.test", "TXT"): ['"%{i} may not send for %{d}\\009\\010!"'],
    })
    outcome = run(resolver)
    assert outcome.result == "fail"
    assert outcome.explanation == "192.0.2.10 may not send for example.test??!"


def test_a_dns_failure_is_a_temperror_not_an_exception():
    outcome = run(ZoneResolver({}, failing={"example.test"}))
    assert outcome.result == "temperror"
    assert "timed out" in outcome.explanation


def test_an_unreadable_client_address_is_a_permerror():
    assert run(ZoneResolver({}), client_ip="not-an-ip").result == "permerror"


def test_the_rfc_7208_limits_are_pyspfs():
    assert (spf.MAX_LOOKUP, spf.MAX_VOID_LOOKUPS) == (10, 2)


def test_more_than_ten_lookups_is_a_permerror():
    includes = " ".join(f"include:i{n}.example.test" for n in range(11))
    # Longer than one TXT string may be: split, as a DNS administrator would.
    record = f"v=spf1 {includes} -all"
    records = {("example.test", "TXT"): [f'"{record[:200]}" "{record[200:]}"']}
    records.update({(f"i{n}.example.test", "TXT"): ['"v=spf1 -all"'] for n in range(11)})
    outcome = run(ZoneResolver(records))
    assert outcome.result == "permerror"
    assert "Too many DNS lookups" in outcome.explanation


def test_ten_lookups_are_allowed():
    includes = " ".join(f"include:i{n}.example.test" for n in range(9))
    records = {("example.test", "TXT"): [f'"v=spf1 {includes} a:ok.example.test -all"'],
               ("ok.example.test", "A"): ["192.0.2.10"]}
    records.update({(f"i{n}.example.test", "TXT"): ['"v=spf1 -all"'] for n in range(9)})
    assert run(ZoneResolver(records)).result == "pass"


def test_more_than_two_void_lookups_is_a_permerror():
    records = {("example.test", "TXT"):
               ['"v=spf1 a:n1.example.test a:n2.example.test a:n3.example.test -all"']}
    outcome = run(ZoneResolver(records))
    assert outcome.result == "permerror"
    assert "Void lookup limit" in outcome.explanation


def test_a_check_that_outlasts_its_budget_is_a_temperror():
    release = threading.Event()

    class StuckResolver:
        def resolve_blocking(self, name, rdtype, settings, budget):
            release.wait(30)   # ignores its budget: only the outer wait can end the check
            raise NXDOMAIN()

    async def scenario():
        try:
            return await check("192.0.2.10", "someone@example.test", "h.test", SETTINGS,
                               StuckResolver(), 0.5)
        finally:
            # Before asyncio.run waits for its worker threads to end.
            release.set()

    outcome = asyncio.run(scenario())
    assert outcome == SpfOutcome("temperror", "SPF check of example.test took longer than 0.5s",
                                 "example.test")


# ---- own MX hosts -------------------------------------------------------------------

def test_no_domain_of_our_own_means_no_mx_hosts():
    class NoDns:
        async def resolve(self, *args, **kwargs):
            raise AssertionError("a * domain needs no lookup")

    assert asyncio.run(own_mx_addresses(SETTINGS, NoDns())) == frozenset()


def test_a_result_is_reused_for_the_same_client_sender_and_helo(monkeypatch):
    asked = []
    real = spf_check._evaluate

    def counting(*args):
        asked.append(args[:3])
        return real(*args)
    monkeypatch.setattr(spf_check, "_evaluate", counting)
    resolver = ZoneResolver({("pass.test", "TXT"): ['"v=spf1 ip4:192.0.2.0/24 -all"']})
    for _ in range(3):
        assert run(resolver, "192.0.2.7", "a@pass.test", "h.test").result == "pass"
    assert len(asked) == 1
    # Another client, or another sender, is asked anew.
    assert run(resolver, "198.51.100.8", "a@pass.test", "h.test").result == "fail"
    assert run(resolver, "192.0.2.7", "b@pass.test", "h.test").result == "pass"
    assert len(asked) == 3
