"""Anti-Spam > Access: Blocked IP Addresses (antispam.blocked_ips).

A client whose address falls in an entry (an address, a range a-b or a
network; IPv4 and IPv6) is answered `554 5.7.1` at connect, before the
greeting; the reply, and so smtpd's log line, names the entry that matched.
An IPv4 client seen as an IPv4-mapped IPv6 address (::ffff:192.0.2.7) is
compared as the IPv4 address it is.

An explicit block wins over everything: a client inside Trusted Networks,
or one that would authenticate, is refused as well when its address is
listed here. Listing an address is the administrator's deliberate word about
that host; the broad Trusted Networks must not undo it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from firmware.mail.policy import Check, Context, Order, reject

from .settings import BLOCKED_IPS, parse_ip_entry

CHECK_NAME = "blocked_ips"


@dataclass(frozen=True)
class BlockedRange:
    version: int
    low: int
    high: int
    entry: str          # as the administrator wrote it, for the reply and the log


def as_plain_address(address):
    """IPv4-mapped IPv6 addresses are the IPv4 address they carry."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_address(text: str):
    """The client's address without an IPv6 zone, IPv4-mapped ones as IPv4;
    None when it is not an address (a Unix socket in tests)."""
    try:
        return as_plain_address(ipaddress.ip_address(text.split("%")[0]))
    except ValueError:
        return None


def compile_entries(raw: str) -> tuple[BlockedRange, ...]:
    """The setting's lines as integer ranges. Lines the setting's type would
    refuse cannot be stored, so one that fails here is skipped, not fatal."""
    ranges = []
    for line in str(raw or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            low, high = parse_ip_entry(line)
        except ValueError:
            continue
        low, high = as_plain_address(low), as_plain_address(high)
        if low.version != high.version:
            continue  # a range from ::ffff:0:0/96 into real IPv6: compare as written
        ranges.append(BlockedRange(low.version, int(low), int(high), line))
    return tuple(ranges)


def matching_entry(ranges, address) -> str | None:
    value = int(address)
    for item in ranges:
        if item.version == address.version and item.low <= value <= item.high:
            return item.entry
    return None


class BlockedIps:
    """The compiled entries, rebuilt only when the setting's text changes."""

    def __init__(self):
        self._raw: str | None = None
        self._ranges: tuple[BlockedRange, ...] = ()

    def ranges(self, raw: str) -> tuple[BlockedRange, ...]:
        if raw != self._raw:
            self._ranges, self._raw = compile_entries(raw), raw
        return self._ranges

    def __call__(self, ctx: Context):
        ranges = self.ranges(ctx.settings[BLOCKED_IPS])
        if not ranges:
            return None
        address = client_address(ctx.client_ip)
        entry = matching_entry(ranges, address) if address is not None else None
        if entry is None:
            ctx.count_result(CHECK_NAME, "passed")
            return None
        ctx.count_result(CHECK_NAME, "rejected")
        return reject("5.7.1", f"Service unavailable; client [{ctx.client_ip}] blocked by "
                               f"entry {entry}", 554)


def policy_checks(store) -> list[Check]:
    return [Check(CHECK_NAME, "connect", BlockedIps(), order=Order.REPUTATION)]
