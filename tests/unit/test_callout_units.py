"""The callout client's reply parsing and its guard on what goes on the
wire. Replies are fed to a real asyncio StreamReader, limited as the client
limits it."""

from __future__ import annotations

import asyncio

import pytest

from firmware.mail.smtp_reply import (LINE_LIMIT, REPLY_LINES_LIMIT, ProtocolError, Reply,
                                      parse_reply, parse_reply_line, read_reply)
from firmware.mail.verify.callout import (accepts_anything, callout, check_address, check_helo,
                                          host_label)


# ---- one line --------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    (b"250 2.1.5 Ok\r\n", (250, True, "2.1.5 Ok")),
    (b"250-PIPELINING\r\n", (250, False, "PIPELINING")),
    (b"250 \r\n", (250, True, "")),            # smtp-sink ends its EHLO reply so
    (b"250\r\n", (250, True, "")),             # RFC 5321 4.2: the text is optional
    (b"250-\r\n", (250, False, "")),
    (b"550 5.1.1 no\n", (550, True, "5.1.1 no")),   # a bare LF, as some servers send
    (b"421 busy", (421, True, "busy")),
])
def test_reply_lines(raw, expected):
    assert parse_reply_line(raw) == expected


@pytest.mark.parametrize("raw", [
    b"", b"\r\n", b"hello\r\n", b"25 ok\r\n", b"2500 ok\r\n", b"250ok\r\n",
    b"150 not SMTP\r\n", b"650 no such class\r\n", b"270 bad second digit\r\n",
    b"SSH-2.0-OpenSSH_9.2\r\n", b" 250 leading space\r\n",
])
def test_garbage_is_no_reply(raw):
    with pytest.raises(ProtocolError):
        parse_reply_line(raw)


# ---- whole replies ---------------------------------------------------------------------

def test_a_multi_line_reply_keeps_every_line():
    reply = parse_reply([b"250-mx.example.test\r\n", b"250-SIZE 1000\r\n", b"250 8BITMIME\r\n"])
    assert reply == Reply(250, ("mx.example.test", "SIZE 1000", "8BITMIME"))
    assert reply.text == "250 mx.example.test 250 SIZE 1000 250 8BITMIME"


@pytest.mark.parametrize("lines, why", [
    ([b"250-a\r\n", b"550 b\r\n"], "mixes codes"),
    ([b"250 a\r\n", b"250 b\r\n"], "ends in the middle"),
    ([b"250-a\r\n", b"250-b\r\n"], "does not end"),
    ([], "empty"),
    ([b"250-x\r\n"] * REPLY_LINES_LIMIT + [b"250 x\r\n"], "lines"),
])
def test_broken_replies(lines, why):
    with pytest.raises(ProtocolError, match=why):
        parse_reply(lines)


def test_the_reply_text_is_made_safe_and_short():
    reply = parse_reply([b"550 5.1.1 \x1b[31mred\x00 \xff" + b"z" * 500 + b"\r\n"])
    assert reply.text.startswith("550 5.1.1 ?[31mred? ?zzz")
    assert len(reply.text) == 200 and reply.text.isascii() and reply.text.isprintable()


def read(data: bytes, eof: bool = True) -> Reply:
    async def run():
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        reader.feed_data(data)
        if eof:
            reader.feed_eof()
        return await read_reply(reader)
    return asyncio.run(run())


def test_read_reply_stops_at_the_last_line():
    assert read(b"220-first\r\n220 second\r\n250 next reply\r\n") == Reply(220, ("first", "second"))


@pytest.mark.parametrize("data, why", [
    (b"220-first\r\n220-second\r\n", "closed before a complete reply"),
    (b"220 " + b"x" * (LINE_LIMIT + 10), f"longer than {LINE_LIMIT} bytes"),
    (b"220 " + b"x" * (LINE_LIMIT + 10) + b"\r\n", f"longer than {LINE_LIMIT} bytes"),
    (b"220-x\r\n" * (REPLY_LINES_LIMIT + 5), f"longer than {REPLY_LINES_LIMIT} lines"),
    (b"220-x\r\nnonsense\r\n", "not an SMTP reply"),
])
def test_read_reply_refuses(data, why):
    with pytest.raises(ProtocolError, match=why):
        read(data)


# ---- what may go on the wire -----------------------------------------------------------

@pytest.mark.parametrize("address", [
    "alice@lan.test", "first.last+tag@sub.example.test", "o'brien@example.test",
    "\"quoted\"@example.test", "x@[192.0.2.1]",
])
def test_addresses_that_may_go_on_the_wire(address):
    assert check_address(address) == address


@pytest.mark.parametrize("address", [
    "", "alice", "@lan.test", "alice@",
    "alice@lan.test\r\nDATA", "alice@lan.test\n", "alice@lan.test\r", "ali\x00ce@lan.test",
    "alice @lan.test", "alice@lan.test>", "<alice@lan.test", "alice\t@lan.test",
    "jörg@lan.test", "a" * 250 + "@lan.test", None, b"alice@lan.test",
])
def test_addresses_refused(address):
    with pytest.raises(ValueError):
        check_address(address)


@pytest.mark.parametrize("helo", ["", "gate box", "gate\r\nbox", None])
def test_helo_names_refused(helo):
    with pytest.raises(ValueError):
        check_helo(helo)


def test_a_bad_recipient_is_refused_before_any_connection():
    # Port 9 on the discard address: nothing would answer; ValueError must
    # come first, and quickly.
    with pytest.raises(ValueError):
        asyncio.run(callout([("127.0.0.1", 9)], "alice@lan.test\r\nDATA", helo="gatebox.test",
                            budget=0.5))


def test_a_bad_probe_domain_is_refused():
    with pytest.raises(ValueError):
        asyncio.run(accepts_anything(("127.0.0.1", 9), "lan.test>\r\nDATA", helo="gatebox.test",
                                     budget=0.5))


def test_host_labels():
    assert host_label("192.0.2.1", 25) == "192.0.2.1:25"
    assert host_label("2001:db8::1", 25) == "[2001:db8::1]:25"
