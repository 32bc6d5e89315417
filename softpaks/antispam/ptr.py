"""The client's verified PTR names (forward-confirmed reverse DNS, FCrDNS):
the names the client's address points to (PTR) that point back to that
address (A for IPv4, AAAA for IPv6). Only such a name says something about
the client: anyone may put any name in the PTR of their own addresses.

Asked through the session's resolver (ctx.resolver, with its cache) and kept
on the session's Context, since the client's address does not change within
a session: a message to fifty recipients asks DNS once."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import dns.reversename

from firmware.mail.policy import Context
from firmware.mail.resolver import NXDOMAIN, DnsFailure, NoAnswer

from .access import client_address

# A PTR set this long is a misconfiguration or an attempt to make us work.
MAX_NAMES = 10
QUERY_SECONDS = 4.0
# The attribute of the Context the answer is kept in, with the address asked about.
_KEPT = "antispam_verified_names"

log = logging.getLogger("gatebox.antispam")


def _name(text: str) -> str:
    return text.rstrip(".").lower()


async def _addresses(resolver, settings, name: str, rdtype: str) -> set:
    try:
        answer = await resolver.resolve(name, rdtype, settings, QUERY_SECONDS)
    except (NXDOMAIN, NoAnswer):
        return set()
    return {client_address(record.address) for record in answer}


async def forward_confirmed_names(resolver, settings, address) -> tuple[str, ...]:
    """The PTR names of `address` (an ip_address) whose A/AAAA records hold
    it, lower case without the final dot. Raises DnsFailure when a lookup
    failed for the time being."""
    reverse = dns.reversename.from_address(str(address)).to_text()
    try:
        answer = await resolver.resolve(reverse, "PTR", settings, QUERY_SECONDS)
    except (NXDOMAIN, NoAnswer):
        return ()
    names = list(dict.fromkeys(_name(record.target.to_text()) for record in answer))[:MAX_NAMES]
    rdtype = "A" if address.version == 4 else "AAAA"
    found = await asyncio.gather(*(_addresses(resolver, settings, name, rdtype) for name in names))
    return tuple(name for name, addresses in zip(names, found) if address in addresses)


async def verified_names(ctx: Context) -> tuple[str, ...]:
    """The client's forward-confirmed PTR names, asked once per session. A
    lookup that fails for the time being counts as no verified name for the
    rest of the session (logged): a name that cannot be confirmed vouches
    for nothing, and every further recipient would wait out the same
    failure."""
    kept = getattr(ctx, _KEPT, None)
    if kept is not None and kept[0] == ctx.client_ip:
        return kept[1]
    address = client_address(ctx.client_ip)
    names: tuple[str, ...] = ()
    if address is not None and ctx.resolver is not None:
        try:
            names = await forward_confirmed_names(ctx.resolver, ctx.settings, address)
        except DnsFailure as error:
            log.warning("warning: reverse DNS of %s not verified: %s", ctx.client_ip, error)
    setattr(ctx, _KEPT, (ctx.client_ip, names))
    return names
