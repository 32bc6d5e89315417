"""The Anti-Spam SoftPak's settings, declared once like the core ones, whether
or not the SoftPak is licensed, so values outlive a lapse. Labels are
ISMail EP's."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from firmware.config.types import Bool, Integer, Invalid, Setting, is_hostname

ACCESS_MENU = "Anti-Spam > Access"
GREYLIST_MENU = "Anti-Spam > Greylist"

BLOCKED_IPS = "antispam.blocked_ips"
DNSBL = "antispam.dnsbl"
REVERSE_DNS_REQUIRED = "antispam.reverse_dns_required"
REVERSE_DNS_FORWARD_CONFIRMED = "antispam.reverse_dns_forward_confirmed"
GREYLIST = "antispam.greylist"
GREYLIST_INITIAL_MIN = "antispam.greylist_initial_min"
GREYLIST_LIFETIME_MIN = "antispam.greylist_lifetime_min"
GREYLIST_PASS_DAYS = "antispam.greylist_pass_days"
GREYLIST_AUTO_WHITELIST = "antispam.greylist_auto_whitelist"
GREYLIST_EXEMPT_SPF_FCRDNS = "antispam.greylist_exempt_spf_fcrdns"

DEFAULT_DNSBL_CODES = "127.0.0.2-7"
MAX_LINES = 5000


def _lines(raw) -> list[str]:
    return [line.strip() for line in str(raw or "").replace(",", "\n").splitlines()
            if line.strip() and not line.strip().startswith("#")]


def parse_ip_entry(text: str):
    """An address, a CIDR network or a range a-b (IPv4 or IPv6): returns
    (first, last) addresses, or raises ValueError."""
    if "-" in text:
        first, _, last = (part.strip() for part in text.partition("-"))
        low, high = ipaddress.ip_address(first), ipaddress.ip_address(last)
        if low.version != high.version or low > high:
            raise ValueError(f"{text}: a range runs from the lower to the higher address")
        return low, high
    network = ipaddress.ip_network(text, strict=False)
    return network[0], network[-1]


@dataclass(frozen=True)
class IpEntries:
    """Blocked IP Addresses: one entry per line."""
    rule: str = ("must be IP addresses (192.0.2.7), ranges (192.0.2.10-192.0.2.20) or "
                 "networks (192.0.2.0/24, 2001:db8::/32), one per line")
    multiline = True

    def parse(self, raw):
        lines = _lines(raw)
        if len(lines) > MAX_LINES:
            raise Invalid(f"at most {MAX_LINES} entries")
        for line in lines:
            try:
                parse_ip_entry(line)
            except ValueError:
                raise Invalid(f"{self.rule}; '{line[:60]}' is not one") from None
        return "\n".join(dict.fromkeys(lines))

    def render(self, value) -> str:
        return value


_CODE_RANGE = re.compile(r"^127\.\d{1,3}\.\d{1,3}\.\d{1,3}(-\d{1,3})?$")


def parse_codes(text: str) -> list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]]:
    """'127.0.0.2-7', '127.0.0.2-12', '127.0.0.2;127.0.0.4' -> [(low, high), ...]."""
    ranges = []
    for part in (p.strip() for p in text.split(";")):
        if not _CODE_RANGE.match(part):
            raise ValueError(f"'{part}' is not a return code such as 127.0.0.2 or 127.0.0.2-7")
        address, _, end = part.partition("-")
        low = ipaddress.IPv4Address(address)
        high = low if not end else ipaddress.IPv4Address(address.rsplit(".", 1)[0] + "." + end)
        if high < low:
            raise ValueError(f"'{part}': the range runs downwards")
        ranges.append((low, high))
    return ranges


def parse_zone_line(line: str) -> tuple[str, str]:
    """'zone' or 'zone=codes' -> (zone, codes)."""
    zone, _, codes = (p.strip() for p in line.partition("="))
    zone = zone.lower().rstrip(".")
    if not is_hostname(zone) or "." not in zone:
        raise ValueError(f"'{zone}' is not a DNS zone such as zen.spamhaus.org")
    codes = codes or DEFAULT_DNSBL_CODES
    parse_codes(codes)
    return zone, codes


@dataclass(frozen=True)
class DnsblZones:
    """DNS RBL filters: 'zone' or 'zone=codes', one per line."""
    rule: str = ("must be DNS blocklist zones, one per line: zen.spamhaus.org, or "
                 "zone=127.0.0.2-12 or zone=127.0.0.2;127.0.0.4 for the return codes that count")
    multiline = True

    def parse(self, raw):
        lines = _lines(raw)
        if len(lines) > 50:
            raise Invalid("at most 50 zones")
        parsed = []
        for line in lines:
            try:
                zone, codes = parse_zone_line(line)
            except ValueError as error:
                raise Invalid(f"{self.rule}; {error}") from None
            parsed.append(zone if codes == DEFAULT_DNSBL_CODES and "=" not in line
                          else f"{zone}={codes}")
        return "\n".join(dict.fromkeys(parsed))

    def render(self, value) -> str:
        return value


SETTINGS = [
    Setting(BLOCKED_IPS, IpEntries(), "", "Blocked IP Addresses", ACCESS_MENU,
            "Clients that may not connect at all (554 5.7.1): addresses, ranges a-b and "
            "networks, IPv4 and IPv6, one per line."),
    Setting(DNSBL, DnsblZones(), "", "DNS RBL filters", ACCESS_MENU,
            "Blocklist zones asked about each client, one per line. A zone alone counts the "
            "answers 127.0.0.2-7 as listed; zone=127.0.0.2-12 or zone=127.0.0.2;127.0.0.4 "
            "choose others. A listed client is refused (554 5.7.1). Each zone is tested every "
            "hour (RFC 5782); a broken one stops deciding until it passes again."),
    Setting(REVERSE_DNS_REQUIRED, Bool(), False, "Reverse DNS Required", ACCESS_MENU,
            "Refuse clients whose address has no PTR record (550 5.7.25; 450 4.7.25 when the "
            "lookup fails). Trusted Networks and authenticated clients are exempt."),
    Setting(REVERSE_DNS_FORWARD_CONFIRMED, Bool(), False, "Require Forward-Confirmed Reverse DNS",
            ACCESS_MENU, "Stricter: the PTR name must also resolve back to the client's address.",
            visible_when=(REVERSE_DNS_REQUIRED, (True,))),
    Setting(GREYLIST, Bool(), False, "Enable Greylisting", GREYLIST_MENU,
            "Mail from a new (client network, sender, recipient) is deferred once (451 4.7.1); "
            "real servers retry, most spam software does not."),
    Setting(GREYLIST_INITIAL_MIN, Integer(1, 1440), 60, "Initial Block Period (minutes)",
            GREYLIST_MENU, "A retry before this is deferred again."),
    Setting(GREYLIST_LIFETIME_MIN, Integer(10, 10080), 240, "Block Period Lifetime (minutes)",
            GREYLIST_MENU, "A triplet not retried within this is forgotten."),
    Setting(GREYLIST_PASS_DAYS, Integer(1, 365), 36, "Pass Record Lifetime (days)",
            GREYLIST_MENU, "A passed triplet stays valid this long, renewed on each use."),
    Setting(GREYLIST_AUTO_WHITELIST, Integer(0, 1000), 5, "Auto-Whitelist After (passed triplets)",
            GREYLIST_MENU, "A client network that has passed this many triplets skips the "
                           "greylist. 0 turns this off."),
    Setting(GREYLIST_EXEMPT_SPF_FCRDNS, Bool(), False,
            "Exempt Mail Whose SPF Passes From a Forward-Confirmed Client", GREYLIST_MENU,
            "The big providers' server pools are where greylisting delays real mail most; their "
            "mail passes SPF from servers with forward-confirmed reverse DNS. Off by default: "
            "spammers with their own SPF and reverse DNS pass too. Needs Enable SPF."),
]
