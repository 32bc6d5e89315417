"""A large message is kept on disk as DATA arrives, never whole in memory:
the DataSink spills past its prefix, the queue file gets the rest by a
kernel copy, the checks see the prefix and the file, and no scratch file
outlives its DATA. The receiving end is the real smtpd, in process."""

from __future__ import annotations

import errno
import os
import smtplib
import socket

import pytest

from firmware.mail import message_data, queue
from firmware.mail.policy import Check, Order
from firmware.mail.queue import Envelope, FileSpan, Recipient, Spool
from tests.support.gateway import InProcessGateway
from tests.support.net import wait_until

SENDER, RECIPIENT = "a@outside.test", "b@example.com"


def scratch_files(spool_tmp) -> list[str]:
    return [n for n in os.listdir(spool_tmp) if n.startswith(message_data.SCRATCH_PREFIX)]


def test_a_small_message_stays_in_memory(tmp_path):
    sink = message_data.DataSink(tmp_path, prefix=100)
    sink.add(b"Subject: x\r\n\r\n")
    sink.add(b"body\r\n")
    received = sink.finish()
    assert (received.prefix, received.size, received.path) == (b"Subject: x\r\n\r\nbody\r\n", 20, None)
    assert os.listdir(tmp_path) == []


def test_a_large_message_spills_to_a_file_and_keeps_its_prefix(tmp_path):
    sink = message_data.DataSink(tmp_path, prefix=100)
    lines = [b"line %05d\r\n" % n for n in range(20_000)]
    for line in lines:
        sink.add(line)
    received = sink.finish()
    whole = b"".join(lines)
    assert received.size == len(whole)
    assert received.prefix == whole[:100]
    assert received.path.read_bytes() == whole
    assert received.path.stat().st_mode & 0o777 == 0o600
    assert not received.bare_line_endings and not received.eight_bit
    received.discard()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("pieces, bare", [
    ([b"a\r", b"\nb\r\n"], False),          # a CRLF split between two reads
    ([b"a\nb\r\n"], True),
    ([b"a\r", b"b\r\n"], True),
    ([b"a\r\n", b"\r"], True),
])
def test_line_endings_are_judged_on_the_stream(tmp_path, pieces, bare):
    sink = message_data.DataSink(tmp_path, prefix=2)
    for piece in pieces:
        sink.add(piece)
    assert sink.finish().bare_line_endings is bare


def test_discarding_removes_the_scratch_file(tmp_path):
    sink = message_data.DataSink(tmp_path, prefix=10)
    sink.add(b"x" * 50 + b"\r\n")
    assert len(scratch_files(tmp_path)) == 1
    sink.discard()
    assert scratch_files(tmp_path) == []


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "read-write"])
def test_the_queue_file_gets_a_file_span_exactly(tmp_path, monkeypatch, kernel_copy):
    if not kernel_copy:
        def refuse(*args):
            raise OSError(errno.EXDEV, "cross-device")
        monkeypatch.setattr(queue.os, "copy_file_range", refuse)
    source = tmp_path / "source"
    data = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(data)
    spool = Spool(tmp_path / "spool")
    spool.create()
    envelope = Envelope(id="SPAN1", sender=SENDER, recipients=[Recipient(RECIPIENT)], received=0)
    spool.write(envelope, (b"Trace: 1\r\n", b"Head: 2\r\n", FileSpan(source, 1000, len(data) - 1000)))
    _, stored = spool.load("incoming", "SPAN1")
    assert stored == b"Trace: 1\r\nHead: 2\r\n" + data[1000:]


def test_a_short_source_file_is_an_error_not_a_short_queue_file(tmp_path):
    source = tmp_path / "source"
    source.write_bytes(b"x" * 100)
    spool = Spool(tmp_path / "spool")
    spool.create()
    envelope = Envelope(id="SPAN2", sender=SENDER, recipients=[Recipient(RECIPIENT)], received=0)
    with pytest.raises(queue.QueueError):
        spool.write(envelope, (b"H: 1\r\n", FileSpan(source, 0, 200)))
    assert spool.ids("incoming") == [] and os.listdir(spool.tmp) == []


class Seen:
    """A data check that notes what the chain showed it."""

    def __init__(self):
        self.seen = []

    def __call__(self, ctx):
        path = ctx.message_file
        self.seen.append((len(ctx.message), ctx.message_length,
                          path.read_bytes() if path else None))
        return None


@pytest.fixture
def box(tmp_path):
    seen = Seen()
    gateway = InProcessGateway(tmp_path / "box", checks=[Check("seen", "data", seen, Order.CONTENT)],
                               settings={"email.max_message_size_mb": 32}).start()
    gateway.seen = seen.seen
    yield gateway
    gateway.stop()


def message(body: bytes) -> bytes:
    return (f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: big\r\n"
            f"Message-ID: <big@outside.test>\r\n\r\n").encode() + body


def test_checks_see_the_prefix_and_the_file_and_the_queue_gets_it_all(box):
    body = b"".join(b"..line %06d \xc3\xa9\r\n" % n for n in range(100_000))
    sent = message(body)
    with smtplib.SMTP(box.host, box.port) as client:
        assert client.sendmail(SENDER, [RECIPIENT], sent) == {}
    # smtplib stuffs every leading dot; the box holds what was meant.
    [(held, length, on_disk)] = box.seen
    assert held == message_data.PREFIX and length == len(sent) and on_disk == sent
    [(envelope, stored)] = box.queued()
    assert stored.endswith(b"\r\n\r\n" + body)
    assert envelope.size == len(stored) and envelope.body_8bit
    assert scratch_files(box.spool.tmp) == []


def test_a_bare_line_feed_past_the_prefix_is_still_refused(box):
    body = b"x" * 70 + b"\r\n"
    sent = message(body * 10_000 + b"smuggled\n.\nMAIL FROM:<x@y>\r\n")
    with smtplib.SMTP(box.host, box.port) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(SENDER, [RECIPIENT], sent)
    assert refused.value.smtp_code == 550 and b"bare <LF>" in refused.value.smtp_error
    assert box.queued() == [] and scratch_files(box.spool.tmp) == []


def test_a_client_that_goes_away_mid_data_leaves_no_scratch_file(box):
    with socket.create_connection((box.host, box.port), timeout=30) as raw:
        reader = raw.makefile("rb")
        reader.readline()
        for command in (b"EHLO c.outside.test", f"MAIL FROM:<{SENDER}>".encode(),
                        f"RCPT TO:<{RECIPIENT}>".encode(), b"DATA"):
            raw.sendall(command + b"\r\n")
            while (line := reader.readline())[3:4] == b"-":
                pass
        assert line.startswith(b"354")
        raw.sendall(b"Subject: cut\r\n\r\n" + b"y" * 78 + b"\r\n" * 1 + (b"z" * 78 + b"\r\n") * 8000)
        wait_until(lambda: len(scratch_files(box.spool.tmp)) == 1, 30, what="the scratch file")
        reader.close()  # the file object holds the socket open too
    wait_until(lambda: scratch_files(box.spool.tmp) == [], 30, what="the scratch file removed")
    assert box.queued() == []


def test_the_queue_managers_budget_lets_large_messages_through_a_few_at_a_time():
    import asyncio
    from firmware.mail.qmgr import ByteBudget

    async def scenario():
        budget = ByteBudget(10)
        order = []

        async def hold(name, octets, release: asyncio.Event):
            await budget.acquire(octets)
            order.append((name, budget.used))
            await release.wait()
            budget.release(octets)

        gates = {name: asyncio.Event() for name in "abcd"}
        tasks = [asyncio.create_task(hold("a", 6, gates["a"])),
                 asyncio.create_task(hold("b", 6, gates["b"])),
                 asyncio.create_task(hold("c", 25, gates["c"])),
                 asyncio.create_task(hold("d", 3, gates["d"]))]
        await asyncio.sleep(0)
        assert order == [("a", 6), ("d", 9)]          # b and c wait: over the budget
        gates["a"].set()
        gates["d"].set()
        while len(order) < 3:
            await asyncio.sleep(0)
        assert order[2] in (("b", 6), ("c", 25))
        gates["b"].set()
        gates["c"].set()
        await asyncio.gather(*tasks)
        assert sorted(name for name, _ in order) == list("abcd") and budget.used == 0
        # The one larger than the budget went alone.
        assert ("c", 25) in order

    asyncio.run(scenario())
