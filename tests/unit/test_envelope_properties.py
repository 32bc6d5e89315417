"""Property tests over what reads client bytes: the address parser, the
header summary, and a real in-process SMTP session fed random MAIL FROM and
RCPT TO lines. Nothing raises, nothing unvalidated is kept, and the session
keeps answering and still takes an honest message."""

import re
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.mail import addresses
from firmware.mail.headers import field, safe_text, summary
from tests.support.gateway import InProcessGateway

FORBIDDEN_BYTES = bytes(range(0x21)) + b"\x7f"
REPLY = re.compile(rb"\A\d{3}[ -][\x20-\x7e]*\r\n\Z")

# Address-like text: the characters that matter to a parser, control bytes included.
address_text = st.text(
    alphabet=st.sampled_from(list('ab@.<>"\\()[]:;,% !\r\n\t\x00\x7f\x1bü')) | st.characters(),
    max_size=80)


@given(address_text)
def test_parser_never_raises(text):
    parsed = addresses.parse(text)
    assert isinstance(parsed.local, str) and isinstance(parsed.domain, str)
    assert parsed.domain == parsed.domain.lower()
    _ = parsed.routing_characters, parsed.is_address_literal, parsed.address


@given(address_text)
def test_split_path_keeps_every_character(text):
    path, rest = addresses.split_path(text)
    assert path + rest == text.lstrip(" ")


@given(st.binary(max_size=64))
def test_forbidden_characters_are_exactly_the_control_bytes(raw):
    text = raw.decode("utf-8", "surrogateescape")
    clean = addresses.is_clean(text)
    if any(b in FORBIDDEN_BYTES for b in raw):
        assert not clean
    if raw.isascii() and not any(b in FORBIDDEN_BYTES for b in raw):
        assert clean


def test_forbidden_characters_are_exactly_the_listed_ones_over_every_code_point():
    # The docstring's list, spelled out one character at a time; the function
    # finds them with one pattern. Every code point, surrogates included.
    def listed(ch):
        return (ch <= " " or "\x7f" <= ch <= "\x9f" or "\ud800" <= ch <= "\udfff"
                or ch in "\u2028\u2029")
    every = "".join(map(chr, range(0x110000)))
    found = addresses.forbidden_characters(every)
    assert found == "".join(ch for ch in every if listed(ch))
    assert len(found) == 0x21 + 0x21 + 0x800 + 2


headerish = st.lists(st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"Message-ID: <x@y>", b"Subject: =?utf-8?b?w7w=?=", b"Subject: =?bad?q?x",
                     b"From: a\r", b"Received: by x", b" folded", b"\t", b"", b"\r", b":", b"\xff:"]),
), max_size=20).map(lambda parts: b"\r\n".join(parts))


@given(headerish)
def test_header_summary_never_raises(message):
    info = summary(message)
    assert info.received_count >= 0
    assert len(info.message_id) <= 998 and len(info.subject) <= 998 and len(info.header_from) <= 998


@given(st.text(max_size=300), st.integers(min_value=4, max_value=300))
def test_safe_text_is_one_printable_line(value, limit):
    text = safe_text(value, limit)
    assert len(text) <= limit and all(" " <= ch <= "~" for ch in text)


@given(st.text(max_size=200))
def test_a_field_of_safe_text_is_one_field(value):
    raw = field("X-Test", safe_text(value, 180))
    lines = raw.split(b"\r\n")
    assert lines[-1] == b"" and lines[0].startswith(b"X-Test:")
    assert all(line[:1] in (b" ", b"\t") for line in lines[1:-1])
    assert b"\r" not in b"".join(lines) and b"\n" not in b"".join(lines)


# ---- a real session -----------------------------------------------------------------
@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    box = InProcessGateway(tmp_path_factory.mktemp("fuzzed") / "box").start()
    yield box
    box.stop()


class Session:
    def __init__(self, box):
        self.sock = socket.create_connection((box.host, box.port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.reply().startswith(b"220 ")
        assert self.send(b"EHLO fuzz.test").startswith(b"250")

    def reply(self) -> bytes:
        lines = []
        while True:
            line = self.file.readline()
            assert line, f"the server closed the connection after {lines!r}"
            assert REPLY.match(line), line
            lines.append(line)
            if line[3:4] == b" ":
                return b"".join(lines)

    def send(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self):
        self.sock.sendall(b"QUIT\r\n")
        self.file.close()
        self.sock.close()


def _clean_path(arg: bytes) -> bool:
    text = arg.decode("utf-8", "surrogateescape").strip()
    return addresses.is_clean(addresses.split_path(text)[0])


path_bytes = st.one_of(
    st.binary(max_size=60),
    st.tuples(st.binary(max_size=30), st.binary(max_size=30)).map(
        lambda parts: b"<" + parts[0] + b"@" + parts[1] + b">"),
    st.binary(max_size=30).map(lambda p: b'<"' + p + b'"@example.com>'),
).map(lambda raw: raw.replace(b"\n", b""))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(senders=st.lists(path_bytes, min_size=1, max_size=4),
       recipients=st.lists(path_bytes, min_size=1, max_size=4))
def test_random_mail_and_rcpt_lines_keep_the_session_consistent(gateway, senders, recipients):
    session = Session(gateway)
    try:
        for arg in senders:
            reply = session.send(b"MAIL FROM:" + arg)
            if reply.startswith(b"250"):
                assert _clean_path(arg), (arg, reply)
            elif not _clean_path(arg):
                assert reply.startswith(b"501 5.1.7 "), (arg, reply)
            assert session.send(b"RSET").startswith(b"250")

        assert session.send(b"MAIL FROM:<fuzz@example.com>").startswith(b"250 ")
        for arg in recipients:
            reply = session.send(b"RCPT TO:" + arg)
            if reply.startswith(b"250"):
                assert _clean_path(arg), (arg, reply)
            elif not _clean_path(arg):
                assert reply.startswith(b"501 5.1.3 "), (arg, reply)
        assert session.send(b"RCPT TO:<bob@example.com>").startswith(b"250 ")
        assert session.send(b"DATA").startswith(b"354 ")
        reply = session.send(b"Subject: after the noise\r\n\r\nhello\r\n.")
        assert reply.startswith(b"250 2.0.0 Ok: queued as "), reply
        qid = reply.split()[-1].decode()
    finally:
        session.close()

    envelope, message = gateway.spool.load("incoming", qid)
    assert addresses.is_clean(envelope.sender)
    assert all(addresses.is_clean(r.address) for r in envelope.recipients)
    head = message.split(b"\r\n\r\n", 1)[0]
    assert all(not any(b in line for b in b"\r\x00\x7f") for line in head.split(b"\r\n"))
