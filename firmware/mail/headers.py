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


# ---- what the box adds ------------------------------------------------------------------
_FIELD_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")
FIELD_VALUE_LIMIT = 900


def safe_text(value, limit: int = 200) -> str:
    """Client-supplied text made fit for a header or a log line: printable
    ASCII only (anything else, CR and LF above all, becomes '?'), single
    spaces, at most `limit` characters."""
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in str(value).replace("\t", " "))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def field(name: str, value: str) -> bytes:
    """One header field, folded at commas so no line is over 78 characters
    where it can be helped (RFC 5322 2.2.3), CRLF-terminated."""
    lines, line = [], f"{name}:"
    for part in value.split(" "):
        if len(line) + 1 + len(part) > 78 and line.strip() and line != f"{name}:":
            lines.append(line)
            line = "\t" + part
        else:
            line += " " + part
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")


def _split(message: bytes) -> tuple[bytes, bytes]:
    """(header block with its final line ending, the rest: blank line and body)."""
    match = _END_OF_HEADERS.search(message, 0, _HEADER_LIMIT)
    if not match:
        return message, b""
    # Keep the first line ending with the headers, the blank line with the body.
    first_end = message.index(b"\n", match.start()) + 1
    return message[:first_end], message[first_end:]


def _fields(block: bytes) -> list[bytes]:
    """The header block as whole fields, continuation lines included."""
    result: list[bytes] = []
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and result:
            result[-1] += line
        else:
            result.append(line)
    return result


def without_fields(message: bytes, drop) -> bytes:
    """The message without the header fields for which drop(lower-case name,
    unfolded value) is true."""
    head = _split(message[:_HEADER_LIMIT])[0]   # a bounded slice: the body is not copied
    kept, dropped = [], False
    for whole in _fields(head):
        match = _FIELD_NAME.match(whole)
        if match:
            name = match.group(1).decode("ascii").lower()
            value = whole[match.end():].decode("utf-8", "replace")
            if drop(name, " ".join(value.split())):
                dropped = True
                continue
        kept.append(whole)
    if not dropped:
        return message    # the usual case, and a large message is not copied
    # The body as a view: one copy of it, into the result.
    return b"".join([*kept, memoryview(message)[len(head):]])


def with_subject_prefix(message: bytes, prefix: str) -> bytes:
    """Put `prefix` in front of the Subject (once), or add a Subject."""
    head, rest = _split(message)
    fields = _fields(head)
    encoded = prefix.encode("ascii")
    for index, whole in enumerate(fields):
        match = _FIELD_NAME.match(whole)
        if match and match.group(1).lower() == b"subject":
            value = whole[match.end():].lstrip(b" \t")
            if not value.startswith(encoded.strip()):
                fields[index] = whole[:match.end()] + b" " + encoded + value
            return b"".join(fields) + rest
    return field("Subject", prefix.strip()) + message
