"""The header fields of a message, read leniently: a line that is not a
field is skipped, not fatal, since the message comes from anyone."""

from __future__ import annotations

import functools
import re

MAX_HEADER_OCTETS = 256 * 1024

_FIELD = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")


def header_block(message: bytes) -> bytes:
    head = message[:MAX_HEADER_OCTETS]
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = head.find(separator)
        if end >= 0:
            return head[:end]
    return head


# DKIM, DMARC and ARC each read the same message's fields at DATA: parse once.
# bytes keep their hash, so a repeat lookup costs no rehash of the message.
@functools.lru_cache(maxsize=1)
def fields(message: bytes) -> tuple[tuple[str, bytes], ...]:
    """(lower-case name, raw value unfolded) in order."""
    found: list[list] = []
    for line in re.split(rb"\r?\n", header_block(message)):
        if line[:1] in (b" ", b"\t"):
            if found:
                found[-1][1] += b" " + line.strip()
            continue
        match = _FIELD.match(line)
        if match is None:
            continue
        found.append([match.group(1).decode("ascii").lower(), line[match.end():].strip()])
    return tuple((name, value) for name, value in found)


def values(message: bytes, name: str) -> list[bytes]:
    return [value for field_name, value in fields(message) if field_name == name]
