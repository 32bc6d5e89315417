"""MX lookup for delivery (RFC 5321 section 5.1), through the process's one
resolver. The delivery agents run in worker threads, so this is the
resolver's blocking facade; the resolver honours the DNS Servers and DNS
Port settings."""

from __future__ import annotations

import random

from . import resolver as dns_resolver
from .resolver import NXDOMAIN, QUERY_SECONDS, DnsFailure, NoAnswer


class LookupFailed(Exception):
    def __init__(self, text: str, permanent: bool):
        super().__init__(text)
        self.permanent = permanent


def mail_hosts(domain: str, settings, resolver: dns_resolver.Resolver | None = None,
               budget: float = QUERY_SECONDS) -> list[tuple[str, list[str]]]:
    """[(host, [addresses...]), ...] in the order to try them; `budget` is
    the time each query may take."""
    resolver = resolver or dns_resolver.shared()
    try:
        answer = resolver.resolve_blocking(domain, "MX", settings, budget)
        records = sorted(answer, key=lambda r: (r.preference, random.random()))
        hosts = [str(r.exchange).rstrip(".") for r in records]
        if len(hosts) == 1 and hosts[0] in ("", "."):
            raise LookupFailed(f"{domain} does not accept mail (null MX, RFC 7505)", permanent=True)
    except NXDOMAIN:
        raise LookupFailed(f"Host or domain name not found: {domain}", permanent=True) from None
    except NoAnswer:
        hosts = [domain]  # implicit MX: the domain's own address records
    except DnsFailure as error:
        raise LookupFailed(str(error), permanent=False) from None
    result = []
    for host in hosts:
        addresses = _addresses(resolver, host, settings, budget)
        if addresses:
            result.append((host, addresses))
    if not result:
        raise LookupFailed(f"no address found for the mail hosts of {domain}", permanent=False)
    return result


def _addresses(resolver, host: str, settings, budget: float) -> list[str]:
    found = []
    for rdtype in ("A", "AAAA"):
        try:
            found += [r.address for r in resolver.resolve_blocking(host, rdtype, settings, budget)]
        except (NXDOMAIN, NoAnswer, DnsFailure):
            # One host without addresses (or whose lookup failed) does not stop
            # delivery to the others; no host at all is a temporary failure above.
            continue
    return found
