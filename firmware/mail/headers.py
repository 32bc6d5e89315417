"""Cheap look at a message's header block: what the queue listing and the
duplicate check need, without parsing the body."""

from __future__ import annotations

import email.header
import re
from dataclasses import dataclass

_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")
_HEADER_LIMIT = 256 * 1024


@dataclass(frozen=True)
class Summary:
    message_id: str
    subject: str
    header_from: str
    received_count: int


def header_block(message: bytes) -> bytes:
    match = _END_OF_HEADERS.search(message, 0, _HEADER_LIMIT)
    return message[:match.start()] if match else message[:_HEADER_LIMIT]


def unfolded_headers(message: bytes):
    """Yields (lower-case name, value) pairs of the header block."""
    name, value = None, []
    for line in header_block(message).split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t") and name is not None:
            value.append(line.strip())
            continue
        if name is not None:
            yield name, b" ".join(value).decode("utf-8", "replace")
        field, colon, rest = line.partition(b":")
        if colon and field and b" " not in field:
            name, value = field.decode("ascii", "replace").lower(), [rest.strip()]
        else:
            name, value = None, []
    if name is not None:
        yield name, b" ".join(value).decode("utf-8", "replace")


def decode(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def summary(message: bytes) -> Summary:
    found = {"message-id": "", "subject": "", "from": ""}
    received = 0
    for name, value in unfolded_headers(message):
        if name == "received":
            received += 1
        elif name in found and not found[name]:
            found[name] = value
    return Summary(found["message-id"][:998], decode(found["subject"])[:998],
                   decode(found["from"])[:998], received)
