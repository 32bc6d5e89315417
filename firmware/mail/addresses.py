"""Envelope address parsing and the checks relay control needs."""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Address:
    raw: str
    local: str
    domain: str            # lower case; "" when the address has no domain
    source_route: str = ""  # "@hostA,@hostB" of an RFC 821 source route
    quoted: bool = False

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}" if self.domain else self.local

    @property
    def is_address_literal(self) -> bool:
        return self.domain.startswith("[")

    @property
    def routing_characters(self) -> bool:
        """Local parts that ask the next hop to relay further (user%host,
        host!user, "user@host"): the classic open-relay tricks."""
        local = self.local.strip('"')
        return any(c in local for c in "%!@")


def parse(raw: str) -> Address:
    text = raw.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    route = ""
    if text.startswith("@") and ":" in text:
        route, text = text.split(":", 1)
    quoted = text.startswith('"')
    if quoted:
        closing = text.find('"', 1)
        while closing > 0 and text[closing - 1] == "\\":
            closing = text.find('"', closing + 1)
        if closing < 0:
            return Address(raw, text, "", route, True)
        local, rest = text[:closing + 1], text[closing + 1:]
        domain = rest[1:] if rest.startswith("@") else ""
        return Address(raw, local, domain.lower(), route, True)
    local, at, domain = text.rpartition("@")
    if not at:
        return Address(raw, text, "", route)
    return Address(raw, local, domain.lower(), route)


def forbidden_characters(text: str) -> str:
    """The characters no envelope address may hold, in the order found:
    every byte below 0x21 (controls, CR, LF, NUL, space, tab; quoted local
    parts included) and DEL; and, as the command line is read as UTF-8
    with surrogate escapes, bytes that are not UTF-8 and the C1 and Unicode
    line-breaking controls, which header and log readers treat as line ends."""
    return "".join(_FORBIDDEN.findall(text))


_FORBIDDEN = re.compile("[\x00-\x20\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def is_clean(text: str) -> bool:
    """Whether this address may go into a header, a log line or a command."""
    return not forbidden_characters(text)


def split_path(arg: str) -> tuple[str, str]:
    """(the path exactly as the client sent it, the parameters after it) of
    a MAIL FROM / RCPT TO argument, without interpreting anything: "<...>"
    up to its closing bracket outside quotes, else up to the first space
    outside quotes. The address checks look at these characters, not at
    what a parser made of them (one drops comments and quotes)."""
    text = arg.lstrip(" ")
    bracketed = text.startswith("<")
    quoted = escaped = False
    for index, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif bracketed and ch == ">":
            return text[:index + 1], text[index + 1:]
        elif not bracketed and ch == " ":
            return text[:index], text[index:]
    return text, ""


def unbracketed(path: str) -> str:
    if path.startswith("<"):
        path = path[1:]
    if path.endswith(">"):
        path = path[:-1]
    return path


def literal_ip(domain: str):
    """'[192.0.2.1]' or '[IPv6:2001:db8::1]' -> ip_address, else None."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    if inner.lower().startswith("ipv6:"):
        inner = inner[5:]
    try:
        return ipaddress.ip_address(inner)
    except ValueError:
        return None


def comparable_ip(text: str):
    """An address comparable whatever its spelling (IPv6 forms, a %scope,
    IPv4-mapped IPv6), or None when the text is not an address."""
    try:
        address = ipaddress.ip_address(str(text).split("%")[0])
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address


def in_networks(ip: str, networks: str) -> bool:
    """True when ip lies in the comma-separated Trusted Networks value."""
    if networks.strip() == "*":
        return True
    address = comparable_ip(ip)
    if address is None:
        return False
    return any(address in network for network in parsed_networks(networks))


@functools.lru_cache(maxsize=64)
def parsed_networks(networks: str) -> tuple:
    """The networks of a comma-separated value, items that are not one left
    out. Parsed once per value: smtpd asks on every connection, and parsing
    was a twentieth of its CPU."""
    parsed = []
    for item in networks.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            parsed.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue
    return tuple(parsed)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()
