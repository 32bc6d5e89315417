"""MX lookup with dnspython. The resolver's servers and port are settings so
the box (and its tests) can be pointed at a particular DNS server."""

from __future__ import annotations

import random

import dns.exception
import dns.resolver


class LookupFailed(Exception):
    def __init__(self, text: str, permanent: bool):
        super().__init__(text)
        self.permanent = permanent


def resolver_for(settings) -> dns.resolver.Resolver:
    servers = [s for s in settings["dns.nameservers"].split(",") if s]
    if servers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = servers
    else:
        resolver = dns.resolver.Resolver()
    resolver.port = settings["dns.port"]
    resolver.timeout = 5
    resolver.lifetime = 15
    return resolver


def mail_hosts(domain: str, settings) -> list[tuple[str, list[str]]]:
    """[(host, [addresses...]), ...] in the order to try them (RFC 5321 5.1)."""
    resolver = resolver_for(settings)
    try:
        answer = resolver.resolve(domain, "MX")
        records = sorted(answer, key=lambda r: (r.preference, random.random()))
        hosts = [str(r.exchange).rstrip(".") for r in records]
        if len(hosts) == 1 and hosts[0] in ("", "."):
            raise LookupFailed(f"{domain} does not accept mail (null MX, RFC 7505)", permanent=True)
    except dns.resolver.NXDOMAIN:
        raise LookupFailed(f"Host or domain name not found: {domain}", permanent=True) from None
    except dns.resolver.NoAnswer:
        hosts = [domain]  # implicit MX: the domain's own address records
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as error:
        raise LookupFailed(f"DNS lookup of {domain} failed: {error}", permanent=False) from None
    result = []
    for host in hosts:
        addresses = _addresses(resolver, host)
        if addresses:
            result.append((host, addresses))
    if not result:
        raise LookupFailed(f"no address found for the mail hosts of {domain}", permanent=False)
    return result


def _addresses(resolver, host: str) -> list[str]:
    found = []
    for rdtype in ("A", "AAAA"):
        try:
            found += [r.address for r in resolver.resolve(host, rdtype)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except (dns.exception.Timeout, dns.resolver.NoNameservers):
            continue
    return found
