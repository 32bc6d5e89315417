"""Enable SPF (RFC 7208), and the MX hosts of Ignore Authenticated Clients,
Trusted Network and my MX Servers.

pyspf does the evaluation, with its RFC 7208 section 4.6.4 limits left as
they are (strict mode: more than 10 DNS-querying mechanisms, or more than 2
void lookups, is a permerror). It is synchronous, so it runs in a worker
thread; its DNS goes through the process's one resolver, so that the DNS
Servers and DNS Port settings and the shared cache apply. pyspf asks DNS
through the module-level function `spf.DNSLookup`; that is replaced once,
here, by one that hands the question to the resolver the calling thread's
evaluation was given (a thread-local, since several evaluations run at once
in different threads). A thread that runs pyspf outside `check` gets pyspf's
own lookup.

The whole evaluation has a time budget: pyspf's `querytime` bounds the time
its lookups may take together, and an outer wait bounds everything else. A
slow or failing DNS server is a temperror, never an exception."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import threading
import time
from dataclasses import dataclass

import spf

from ..resolver import NXDOMAIN, QUERY_SECONDS, DnsFailure, NoAnswer, Resolver

RESULTS = frozenset({"pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"})
# pyspf's own temperror names the lookup that failed; it should arrive
# before the outer wait gives up with a vaguer one.
QUERYTIME_SHARE = 0.9
MAX_EXPLANATION = 300
MX_CACHE_SECONDS = 600.0
# After a DNS failure the MX hosts are asked again soon, not in ten minutes.
MX_RETRY_SECONDS = 30.0

log = logging.getLogger("gatebox.smtpd")

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class SpfOutcome:
    result: str          # pass | fail | softfail | neutral | none | permerror | temperror
    explanation: str
    domain: str


# ---- pyspf's DNS, through the resolver ---------------------------------------------

@dataclass(frozen=True)
class _ResolverLookup:
    resolver: Resolver
    settings: object

    def __call__(self, name: str, qtype: str, timeout: float) -> list:
        try:
            answer = self.resolver.resolve_blocking(name, qtype, self.settings, timeout)
        except (NXDOMAIN, NoAnswer):
            return []
        except DnsFailure as error:
            if qtype == "PTR":
                # RFC 7208 5.5: a DNS error in the PTR lookup makes the ptr
                # mechanism (and %{p}) not match; pyspf would make it a
                # temperror, and an unserved reverse zone would defer mail.
                return []
            raise spf.TempError(str(error)) from None
        # dnspython has followed any CNAME chain: the records answer `name`.
        return [((name, qtype), _value(qtype, rdata)) for rdata in answer]


def _value(qtype: str, rdata):
    """The shapes pyspf's DNSLookup_dnspython gives."""
    if qtype in ("A", "AAAA"):
        return rdata.address
    if qtype == "MX":
        return rdata.preference, rdata.exchange.to_text()
    if qtype == "PTR":
        return rdata.target.to_text(omit_final_dot=True)
    if qtype in ("TXT", "SPF"):
        return list(rdata.strings)
    return rdata.to_text()


_current = threading.local()


def _dns_lookup(name, qtype, strict=True, timeout=spf.MAX_PER_LOOKUP_TIME):
    lookup = getattr(_current, "lookup", None)
    if lookup is None:
        return spf.DNSLookup_dnspython(name, qtype, timeout=timeout)
    return lookup(name, qtype, timeout)


spf.DNSLookup = _dns_lookup


# ---- the check -------------------------------------------------------------------

# Results for the same (client, sender, HELO) are reused this long: the
# evaluation is pyspf in a worker thread with a hop to the resolver's loop
# per lookup, the dearest part of a message's checks, and a sender's next
# message usually comes from the same server. The whole sender is the key
# because a record's macros may name its local part. Shorter than the TTL
# of nearly every SPF record; temporary errors are never kept.
RESULT_SECONDS = 300.0
RESULT_ENTRIES = 10_000
_results: collections.OrderedDict = collections.OrderedDict()


def forget_results():
    _results.clear()


async def check(client_ip: str, sender: str, helo: str, settings, resolver: Resolver,
                budget: float = 8.0) -> SpfOutcome:
    """The SPF result for mail from `sender` sent by `client_ip`, which said
    HELO `helo`. A null sender is checked as postmaster@helo (RFC 7208 2.4)."""
    sender = sender or f"postmaster@{helo}"
    domain = sender.rpartition("@")[2] if "@" in sender else sender
    key = (client_ip, sender.lower(), helo.lower(), settings["dns.nameservers"],
           settings["dns.port"])
    kept = _results.get(key)
    if kept is not None and kept[0] > _now():
        _results.move_to_end(key)
        return kept[1]
    lookup = _ResolverLookup(resolver, settings)
    try:
        outcome = await asyncio.wait_for(
            asyncio.to_thread(_evaluate, client_ip, sender, helo, domain, lookup,
                              budget * QUERYTIME_SHARE),
            budget)
    except asyncio.TimeoutError:
        return SpfOutcome("temperror", f"SPF check of {domain} took longer than {budget:g}s",
                          domain)
    if outcome.result != "temperror":
        _results[key] = (_now() + RESULT_SECONDS, outcome)
        _results.move_to_end(key)
        while len(_results) > RESULT_ENTRIES:
            _results.popitem(last=False)
    return outcome


def _evaluate(client_ip: str, sender: str, helo: str, domain: str,
              lookup: _ResolverLookup, querytime: float) -> SpfOutcome:
    _current.lookup = lookup
    try:
        # strict=True is pyspf's default and what keeps the limits hard:
        # lax mode would go on evaluating past them.
        query = spf.query(i=client_ip, s=sender, h=helo, strict=True, querytime=querytime)
        result, _code, explanation = query.check()
    except spf.PermError as error:      # a client address pyspf cannot read
        return SpfOutcome("permerror", _printable(str(error)), domain)
    except spf.TempError as error:
        return SpfOutcome("temperror", _printable(str(error)), domain)
    finally:
        _current.lookup = None
    if result not in RESULTS:
        # Only pyspf's harsh mode (strict=2) answers "ambiguous"; not used here.
        result = "permerror"
    if not explanation and result == "none":
        explanation = f"{domain} publishes no SPF record"
    return SpfOutcome(result, _printable(explanation), query.o or domain)


def _printable(text: str) -> str:
    # A fail's explanation is the sender domain's own exp= text, and ends up
    # in an SMTP reply and a header.
    return _UNPRINTABLE.sub("?", text)[:MAX_EXPLANATION]


# ---- the Domain Name's own MX hosts ------------------------------------------------------

_mx_cache: dict[tuple, tuple[float, frozenset[str]]] = {}
_mx_last_good: dict[tuple, frozenset[str]] = {}
_now = time.monotonic


async def own_mx_addresses(settings, resolver: Resolver,
                           budget: float = QUERY_SECONDS) -> frozenset[str]:
    """The addresses of the MX hosts of the Domain Name ("defined by your
    DNS MX records", so no implicit MX), for the SPF bypass: a backup MX
    that forwards our mail here would fail the sender's SPF."""
    domain = str(settings["email.domain"]).strip().lower().rstrip(".")
    if not domain or domain == "*":
        return frozenset()
    key = (domain, settings["dns.nameservers"], settings["dns.port"])
    now = _now()
    cached = _mx_cache.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        addresses = await _mx_host_addresses(domain, settings, resolver, budget)
    except DnsFailure as error:
        addresses = _mx_last_good.get(key, frozenset())
        log.warning("MX hosts of %s for the SPF bypass: %s; using %d known addresses",
                    domain, error, len(addresses))
        _mx_cache[key] = (now + MX_RETRY_SECONDS, addresses)
        return addresses
    _mx_last_good[key] = addresses
    _mx_cache[key] = (now + MX_CACHE_SECONDS, addresses)
    return addresses


async def _mx_host_addresses(domain: str, settings, resolver: Resolver,
                             budget: float) -> frozenset[str]:
    try:
        answer = await resolver.resolve(domain, "MX", settings, budget)
    except (NXDOMAIN, NoAnswer):
        return frozenset()
    hosts = {record.exchange.to_text(omit_final_dot=True) for record in answer}
    hosts.discard(".")      # the root: a null MX (RFC 7505)
    lookups = [_host_addresses(host, rdtype, settings, resolver, budget)
               for host in sorted(hosts) for rdtype in ("A", "AAAA")]
    found = await asyncio.gather(*lookups, return_exceptions=True)
    for outcome in found:
        if isinstance(outcome, BaseException):
            raise outcome
    return frozenset(address for addresses in found for address in addresses)


async def _host_addresses(host: str, rdtype: str, settings, resolver: Resolver,
                          budget: float) -> list[str]:
    try:
        return [record.address for record in await resolver.resolve(host, rdtype, settings, budget)]
    except (NXDOMAIN, NoAnswer):
        return []
