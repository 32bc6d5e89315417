"""smtpd reads DATA in blocks of whole lines: however the client's octets
are cut into packets, the box holds the same unstuffed message, finds the
end of data exactly, measures the longest line and reads what was pipelined
after the final dot as commands. The receiving end is the real smtpd, in
process, and the client a raw socket that chooses the cuts."""

from __future__ import annotations

import random
import socket

import pytest

from firmware.mail import smtpd
from tests.support.gateway import InProcessGateway

SENDER, RECIPIENT = "a@outside.test", "b@example.com"
HEAD = b"From: <a@outside.test>\r\nSubject: reader\r\nMessage-ID: <r@outside.test>\r\n\r\n"


@pytest.fixture
def box(tmp_path):
    gateway = InProcessGateway(tmp_path / "box", settings={
        "email.max_message_size_mb": 32, "email.max_line_length": "unlimited"}).start()
    yield gateway
    gateway.stop()


def stuff(message: bytes) -> bytes:
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


class Client:
    def __init__(self, box):
        self.sock = socket.create_connection((box.host, box.port), timeout=30)
        self.reader = self.sock.makefile("rb")
        assert self.reply().startswith(b"220")

    def reply(self) -> bytes:
        while (line := self.reader.readline())[3:4] == b"-":
            pass
        return line

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def open_data(self):
        for line in (b"EHLO c.outside.test", f"MAIL FROM:<{SENDER}>".encode(),
                     f"RCPT TO:<{RECIPIENT}>".encode()):
            assert self.command(line).startswith(b"250")
        assert self.command(b"DATA").startswith(b"354")

    def send_in_pieces(self, octets: bytes, cuts: list[int]):
        start = 0
        for cut in sorted(cuts) + [len(octets)]:
            if cut > start:
                self.sock.sendall(octets[start:cut])
            start = max(start, cut)

    def close(self):
        self.reader.close()
        self.sock.close()


MEANT = HEAD + b"".join([
    b".a line that starts with a period\r\n",
    b"..two of them\r\n",
    b"...three\r\n",
    b"\r\n",
    b". after an empty line\r\n",
    b"x" * 70 + b"\r\n",
]) * 300 + b"last line\r\n"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_cut_of_the_stream_gives_the_same_message(box, seed):
    rng = random.Random(seed)
    sent = stuff(MEANT) + b".\r\n"
    # Cuts everywhere, and on purpose inside the CRLF before the final dot
    # and inside the dot line itself.
    cuts = [rng.randrange(len(sent)) for _ in range(200)] + [len(sent) - 4, len(sent) - 2,
                                                             len(sent) - 1]
    client = Client(box)
    try:
        client.open_data()
        client.send_in_pieces(sent, cuts)
        assert client.reply().startswith(b"250")
        assert client.command(b"QUIT").startswith(b"221")
    finally:
        client.close()
    [stored] = box.queued()
    assert stored[1].endswith(MEANT)


def test_commands_pipelined_after_the_final_dot_are_answered(box):
    client = Client(box)
    try:
        client.open_data()
        # One write: the message, its end, and the next transaction.
        client.sock.sendall(stuff(HEAD + b"one\r\n") + b".\r\n"
                            + f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n".encode())
        assert client.reply().startswith(b"250")   # the first message
        assert client.reply().startswith(b"250")   # MAIL
        assert client.reply().startswith(b"250")   # RCPT
        assert client.reply().startswith(b"354")   # DATA
        client.sock.sendall(HEAD + b"two\r\n.\r\nQUIT\r\n")
        assert client.reply().startswith(b"250")
        assert client.reply().startswith(b"221")
    finally:
        client.close()
    endings = sorted(stored[-len(HEAD) - 5:] for _, stored in box.queued())
    assert endings == [HEAD + b"one\r\n", HEAD + b"two\r\n"]


def test_a_line_longer_than_a_read_is_kept_whole(box):
    long_line = b"." + b"y" * (3 * smtpd.DATA_READ) + b"\r\n"   # stuffed: starts with ".."
    meant = HEAD + long_line + b"end\r\n"
    client = Client(box)
    try:
        client.open_data()
        client.send_in_pieces(stuff(meant) + b".\r\n", [len(HEAD) + 1, len(HEAD) + 2])
        assert client.reply().startswith(b"250")
    finally:
        client.close()
    [stored] = box.queued()
    assert stored[1].endswith(meant)


@pytest.mark.parametrize("split_the_long_line", ["whole", "split", "an octet per packet"])
def test_the_longest_line_is_measured_within_and_across_reads(tmp_path, split_the_long_line):
    gateway = InProcessGateway(tmp_path / "box", settings={"email.max_line_length": 1000}).start()
    try:
        client = Client(gateway)
        try:
            client.open_data()
            over = b"z" * 999 + b"\r\n"      # 1001 octets with its CRLF: one too many
            sent = HEAD + b"ok\r\n" + over + b"end\r\n.\r\n"
            cuts = {"whole": [], "split": [len(HEAD) + 4 + 500],
                    # A trickling client: the line grows in the carry a few octets a read.
                    "an octet per packet": list(range(len(HEAD), len(sent)))}
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.send_in_pieces(sent, cuts[split_the_long_line])
            refused = client.reply()
            assert refused[:1] == b"5" and b"line" in refused.lower()
            assert client.command(b"RSET").startswith(b"250")
            client.sock.sendall(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n".encode())
            for _ in range(2):
                assert client.reply().startswith(b"250")
            assert client.reply().startswith(b"354")
            taken = HEAD + b"." + b"z" * 997 + b"\r\n.\r\n"   # exactly 1000, stuffed: taken
            client.send_in_pieces(taken, cuts[split_the_long_line] and list(range(len(taken))))
            assert client.reply().startswith(b"250")
        finally:
            client.close()
        [stored] = gateway.queued()
        assert stored[1].endswith(HEAD + b"z" * 997 + b"\r\n")
    finally:
        gateway.stop()


def test_an_empty_message_ends_at_once(box):
    client = Client(box)
    try:
        client.open_data()
        client.sock.sendall(b".\r\nNOOP\r\n")
        first = client.reply()
        assert first[:1] in (b"2", b"5")          # answered, not waiting for more data
        assert client.reply().startswith(b"250")  # the NOOP after it
    finally:
        client.close()
