"""Reverse DNS Required (antispam.reverse_dns_required): a client whose
address has no PTR record is refused (550 5.7.25); when DNS cannot tell,
the client is asked to come back (450 4.7.25), since a real server will.
With antispam.reverse_dns_forward_confirmed a PTR name must also resolve
back to the client's address (forward-confirmed reverse DNS, FCrDNS): a
PTR anyone can write for their own addresses proves little alone.

Trusted Networks, authenticated and whitelisted clients are exempt."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import dns.reversename

from firmware.mail.addresses import comparable_ip
from firmware.mail.headers import safe_text
from firmware.mail.policy import Check, Context, Order, reject, tempfail
from firmware.mail.resolver import NXDOMAIN, DnsFailure, NoAnswer

from .recent import Recent
from .settings import REVERSE_DNS_FORWARD_CONFIRMED, REVERSE_DNS_REQUIRED

CHECK_NAME = "reverse_dns"
QUERY_SECONDS = 4.0
CHECK_SECONDS = 10.0        # the PTR lookup, then the forward lookups, each within QUERY_SECONDS
MAX_NAMES = 5               # PTR names followed forward; more is a misconfiguration or a trick

# Outcomes of a judgement.
CONFIRMED, NAMED, NO_PTR, UNCONFIRMED, TEMPFAIL = (
    "confirmed", "named", "no_ptr", "unconfirmed", "tempfail")



async def ptr_names(ip, settings, resolver, budget: float = QUERY_SECONDS) -> list[str]:
    """The client's PTR names, lower case without the final dot; [] when it
    has none. DnsFailure when DNS could not tell."""
    name = dns.reversename.from_address(str(ip)).to_text()
    try:
        answer = await resolver.resolve(name, "PTR", settings, budget)
    except (NXDOMAIN, NoAnswer):
        return []
    return list(dict.fromkeys(record.target.to_text().rstrip(".").lower()
                              for record in answer))[:MAX_NAMES]


async def _addresses(name: str, rdtype: str, settings, resolver, budget: float) -> set:
    try:
        answer = await resolver.resolve(name, rdtype, settings, budget)
    except (NXDOMAIN, NoAnswer):
        return set()
    return {comparable_ip(record.address) for record in answer}


async def _confirmed_among(names, ip, settings, resolver, budget: float) -> str | None:
    """The first name whose addresses include ip. DnsFailure when none did
    and DNS could not tell for at least one."""
    rdtype = "A" if ip.version == 4 else "AAAA"
    found = await asyncio.gather(*(_addresses(n, rdtype, settings, resolver, budget)
                                   for n in names), return_exceptions=True)
    for name, addresses in zip(names, found):
        if isinstance(addresses, set) and ip in addresses:
            return name
    for failure in found:
        if isinstance(failure, BaseException):
            raise failure
    return None


async def forward_confirmed_name(ip, settings, resolver, budget: float = QUERY_SECONDS) -> str | None:
    """The client's forward-confirmed PTR name (it has a PTR record whose
    name resolves back to ip), or None: no PTR, no name that resolves back,
    or DNS could not tell."""
    address = comparable_ip(ip)
    if address is None:
        return None
    try:
        names = await ptr_names(address, settings, resolver, budget)
        return await _confirmed_among(names, address, settings, resolver, budget) if names else None
    except DnsFailure:
        return None


@dataclass(frozen=True)
class Judgement:
    outcome: str            # confirmed | named | no_ptr | unconfirmed | tempfail
    names: tuple = ()
    detail: str = ""


async def judge(ip, settings, resolver, forward_confirmed: bool) -> Judgement:
    try:
        names = tuple(await ptr_names(ip, settings, resolver))
    except DnsFailure as error:
        return Judgement(TEMPFAIL, detail=str(error))
    if not names:
        return Judgement(NO_PTR)
    if not forward_confirmed:
        return Judgement(NAMED, names)
    try:
        confirmed = await _confirmed_among(names, ip, settings, resolver, QUERY_SECONDS)
    except DnsFailure as error:
        return Judgement(TEMPFAIL, names, str(error))
    return Judgement(CONFIRMED, (confirmed,)) if confirmed else Judgement(UNCONFIRMED, names)


def reply(ip, judgement: Judgement):
    """The refusal or deferral for a judgement, or None when the client passes."""
    if judgement.outcome == NO_PTR:
        return reject("5.7.25", f"Client host rejected: cannot find your reverse hostname, [{ip}]",
                      550)
    if judgement.outcome == UNCONFIRMED:
        shown = safe_text(", ".join(judgement.names), 150)
        return reject("5.7.25", f"Client host rejected: your reverse hostname {shown} does not "
                                f"resolve back to [{ip}]", 550)
    if judgement.outcome == TEMPFAIL:
        return tempfail("4.7.25", f"Client host rejected: cannot find your reverse hostname, "
                                  f"[{ip}] (temporary DNS failure), try again later", 450)
    return None


def reverse_dns_check() -> Check:
    recent = Recent()

    async def check(ctx: Context):
        settings = ctx.settings
        if not settings[REVERSE_DNS_REQUIRED] or ctx.may_relay or ctx.whitelisted:
            return None
        ip = comparable_ip(ctx.client_ip)
        if ip is None or ctx.resolver is None:
            return None
        strict = bool(settings[REVERSE_DNS_FORWARD_CONFIRMED])
        key = (str(ip), strict)
        judgement = recent.get(key)
        if judgement is None:
            judgement = await judge(ip, settings, ctx.resolver, strict)
            recent.put(key, judgement)
        verdict = reply(ip, judgement)
        ctx.count_result(CHECK_NAME, "passed" if verdict is None else
                         "deferred" if judgement.outcome == TEMPFAIL else "rejected")
        return verdict

    return Check(CHECK_NAME, "rcpt", check, order=Order.REPUTATION + 20, budget=CHECK_SECONDS,
                 asks_dns=True)


def policy_checks(store) -> list:
    return [reverse_dns_check()]
