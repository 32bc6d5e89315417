"""The envelope recipient of mail fetched from a multi-drop mailbox, read
from the header the ISP's delivery wrote on top of it.

Only one line counts: the `occurrence`-th of the chosen header, counted
from the top (the ISP adds its line above everything the sender wrote, so
a Delivered-To further down is the sender's and may be forged). One line
may name several recipients (Envelope-To: a@x, b@x). For Received, the
"for <address>" clause of that line counts, which names a single recipient."""

from __future__ import annotations

import email.utils
import re

from firmware.mail.addresses import is_clean
from firmware.mail.headers import unfolded_headers

HEADERS = ("delivered-to", "x-original-to", "x-envelope-to", "envelope-to", "received")
_RECEIVED_FOR = re.compile(r"\bfor\s+<?([^\s<>;]+@[^\s<>;]+?)>?\s*(?:;|$|\s)", re.IGNORECASE)
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")


def lines_of(message: bytes, header: str) -> list[str]:
    """The values of HEADER in the message, topmost first."""
    header = header.lower()
    return [value for name, value in unfolded_headers(message) if name == header]


def addresses_in(header: str, value: str) -> list[str]:
    """The addresses one line of HEADER names (lower-cased domain), clean ones only."""
    if header.lower() == "received":
        match = _RECEIVED_FOR.search(value)
        candidates = [match.group(1)] if match else []
    else:
        candidates = [address for _, address in email.utils.getaddresses([value])]
    found = []
    for address in candidates:
        address = address.strip().strip("<>")
        if not _ADDRESS.match(address) or not is_clean(address):
            continue
        local, _, domain = address.rpartition("@")
        found.append(f"{local}@{domain.lower()}")
    return list(dict.fromkeys(found))


def recipients(message: bytes, header: str, occurrence: int = 1) -> list[str]:
    """The envelope recipients named by the OCCURRENCE-th line (1 = the
    topmost) of HEADER; [] when the message has no such line or it names
    no usable address."""
    if header not in HEADERS:
        raise ValueError(f"unknown envelope header {header!r}; one of {', '.join(HEADERS)}")
    found = lines_of(message, header)
    if occurrence < 1 or len(found) < occurrence:
        return []
    return addresses_in(header, found[occurrence - 1])


def locate(message: bytes, address: str) -> tuple[str, int] | None:
    """Which header, and which occurrence of it counted from the top, names
    ADDRESS: the one nearest the top of the message when several do. For
    the auto-detect probe, whose envelope recipient is known."""
    address = address.lower()
    counts: dict[str, int] = {}
    for name, value in unfolded_headers(message):
        if name not in HEADERS:
            continue
        counts[name] = counts.get(name, 0) + 1
        if address in (a.lower() for a in addresses_in(name, value)):
            return name, counts[name]
    return None
