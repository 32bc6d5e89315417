"""The "my MX servers" of Address Verification's SPF bypass: the Domain
Name's own MX hosts, and, with ETRN or Mail-bagging, the ISP's mail server,
which holds the office's mail and delivers it here as its secondary MX.
Mail it relays fails the original sender's SPF, and greylisting it would
only delay what the box itself asked for."""

from __future__ import annotations

import logging

from firmware.config.types import split_host_port

from .. import server_type
from ..addresses import comparable_ip
from ..resolver import NXDOMAIN, DnsFailure, NoAnswer, Resolver
from . import spf_check

log = logging.getLogger("gatebox.smtpd")
LOOKUP_SECONDS = 2.0



async def isp_server_addresses(settings, resolver: Resolver | None,
                               budget: float = LOOKUP_SECONDS) -> frozenset[str]:
    """The ISP server's addresses while the box asks it to deliver (ETRN,
    Mail-bagging); none in any other server type."""
    server = str(settings["email.isp_server"]).strip()
    if not server_type.triggers(settings) or not server:
        return frozenset()
    host = split_host_port(server)[0]
    if comparable_ip(host) is not None:
        return frozenset({str(comparable_ip(host))})
    if resolver is None:
        return frozenset()
    found = set()
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(host, rdtype, settings, budget)
        except (NXDOMAIN, NoAnswer):
            continue
        except DnsFailure as error:
            log.warning("the ISP's server %s for the my-MX bypass: %s", host, error)
            continue
        found.update(record.address for record in answer)
    return frozenset(found)


async def my_mx_addresses(settings, resolver: Resolver, budget: float = LOOKUP_SECONDS) -> frozenset[str]:
    return (await spf_check.own_mx_addresses(settings, resolver, budget)
            | await isp_server_addresses(settings, resolver, budget))


def is_among(client_ip: str, addresses) -> bool:
    client = comparable_ip(client_ip)
    return client is not None and client in {comparable_ip(a) for a in addresses}


async def is_isp_server(ctx) -> bool:
    """Whether the SMTP client is the ISP's server delivering what ETRN or the
    finger asked for."""
    return is_among(ctx.client_ip, await isp_server_addresses(ctx.settings, ctx.resolver))
