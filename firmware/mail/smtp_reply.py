"""SMTP replies as a client reads them from an untrusted server: each line
capped in length, the reply in number of lines, and anything that is not a
well-formed reply (RFC 5321 4.2.1) refused as ProtocolError; and the QUIT
that ends such a session without waiting on the server for long. Shared by
the callouts and the delivery agent."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from .headers import safe_text

LINE_LIMIT = 2048          # RFC 5321 4.5.3.1.5 allows 512; real servers stay far below this
REPLY_LINES_LIMIT = 100    # more continuation lines than any real EHLO answer
REPLY_TEXT_LIMIT = 200
QUIT_SECONDS = 2.0         # politeness after the answer must not eat the budget

# A line is the 3-digit code, then "-" (more lines follow), " " or nothing
# (the last line). Only 2xx-5xx exist in SMTP (RFC 5321 4.2.1).
_REPLY_LINE = re.compile(rb"([2-5][0-5][0-9])([- ]?)(.*)", re.DOTALL)


class ProtocolError(Exception):
    """The server's bytes are not an SMTP reply: it decides nothing."""


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return safe_text(" ".join(f"{self.code} {line}".strip() for line in self.lines),
                         REPLY_TEXT_LIMIT)


def parse_reply_line(raw: bytes) -> tuple[int, bool, str]:
    """(code, is the last line, text) of one reply line, its line ending
    included or not."""
    line = raw[:-1] if raw.endswith(b"\n") else raw
    line = line[:-1] if line.endswith(b"\r") else line
    match = _REPLY_LINE.fullmatch(line)
    if match is None:
        raise ProtocolError(f"not an SMTP reply: {safe_text(line.decode('latin-1'), 60)!r}")
    code, separator, text = match.groups()
    if separator == b"" and text:
        raise ProtocolError(f"not an SMTP reply: {safe_text(line.decode('latin-1'), 60)!r}")
    return int(code), separator != b"-", text.decode("latin-1")


def parse_reply(raw_lines: list[bytes]) -> Reply:
    """A whole (multi-line) reply; every line must carry the same code and
    only the last may end the reply (RFC 5321 4.2.1)."""
    if not raw_lines:
        raise ProtocolError("empty reply")
    if len(raw_lines) > REPLY_LINES_LIMIT:
        raise ProtocolError(f"reply longer than {REPLY_LINES_LIMIT} lines")
    code, texts = None, []
    for index, raw in enumerate(raw_lines):
        line_code, last, text = parse_reply_line(raw)
        if code is not None and line_code != code:
            raise ProtocolError(f"reply mixes codes {code} and {line_code}")
        if last != (index == len(raw_lines) - 1):
            raise ProtocolError("reply ends in the middle" if last else "reply does not end")
        code = line_code
        texts.append(text)
    return Reply(code, tuple(texts))


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    lines = []
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise ProtocolError(f"reply line longer than {LINE_LIMIT} bytes") from None
        except asyncio.IncompleteReadError:
            raise ProtocolError("connection closed before a complete reply") from None
        if len(raw) > LINE_LIMIT:
            raise ProtocolError(f"reply line longer than {LINE_LIMIT} bytes")
        lines.append(raw)
        _, last, _ = parse_reply_line(raw)
        if last:
            return parse_reply(lines)
        if len(lines) >= REPLY_LINES_LIMIT:
            raise ProtocolError(f"reply longer than {REPLY_LINES_LIMIT} lines")


async def quit_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       deadline: float):
    """QUIT, the 221 waited for briefly, and the connection closed, all
    before `deadline`. A server that already hung up, stalls or talks
    garbage changes nothing the session decided."""
    loop = asyncio.get_running_loop()
    until = min(loop.time() + QUIT_SECONDS, deadline)
    try:
        writer.write(b"QUIT\r\n")
        async with asyncio.timeout_at(until):
            await writer.drain()
            await read_reply(reader)
    except (OSError, TimeoutError, ProtocolError):
        pass
    writer.close()
    try:
        async with asyncio.timeout_at(max(until, loop.time())):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        writer.transport.abort()
