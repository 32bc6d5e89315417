"""A message crosses the box byte for byte however it is cut: smtpd's DATA
reader (one buffer, unstuffed in place), the queue file written in parts,
and the delivery agent's DATA sent dot-stuffed in chunks. The receiving end is the
real smtpd (aiosmtpd and the whole chain, in process), read back from its
queue files."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from firmware.mail.deliver import smtp as deliver_smtp
from firmware.mail.deliver.smtp import SmtpDelivery
from firmware.mail.headers import without_fields
from firmware.mail.route import Destination
from tests.support.gateway import InProcessGateway

SENDER, RECIPIENT = "a@outside.test", "b@example.com"


@pytest.fixture
def box(tmp_path):
    gateway = InProcessGateway(tmp_path / "box", settings={"email.max_message_size_mb": 32}).start()
    yield gateway
    gateway.stop()


def body_with_dots(lines: int) -> bytes:
    # Every kind of line that stuffing touches: a lone dot, a dot first, two dots.
    kinds = [b".", b".leading dot", b"..two dots", b"plain text line", b"", b". dot space"]
    return b"".join(kinds[n % len(kinds)] + b" %d\r\n" % n if kinds[n % len(kinds)] else b"\r\n"
                    for n in range(lines))


def message(body: bytes, subject: str = "dots") -> bytes:
    return (f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@outside.test>\r\n\r\n").encode() + body


def only_queued(box) -> bytes:
    [(envelope, stored)] = box.queued()
    assert envelope.size == len(stored)
    return stored


def test_smtpd_unstuffs_dot_lines_of_a_large_message_exactly(box):
    body = body_with_dots(120_000)     # about 2 MB
    with smtplib.SMTP(box.host, box.port) as client:
        assert client.sendmail(SENDER, [RECIPIENT], message(body)) == {}
    stored = only_queued(box)
    assert stored.endswith(b"\r\n\r\n" + body)
    assert stored.startswith(b"Received: ")


def deliver_to(box, sent: bytes, settings) -> dict:
    """The message sent to the box by gatebox's own delivery agent."""
    async def run():
        delivery = SmtpDelivery(helo_name="sender.outside.test")
        results = await delivery.deliver(Destination("lan", box.host, box.port), SENDER,
                                         [RECIPIENT], sent, settings)
        await delivery.close_idle()
        return results
    return asyncio.run(run())


@pytest.mark.parametrize("chunk", [1, 7, 64 * 1024])
@pytest.mark.parametrize("ending", [b"\r\n", b"", b"."], ids=["crlf", "no-crlf", "dot-no-crlf"])
def test_delivery_sends_the_message_stuffed_in_chunks_and_it_arrives_unchanged(
        box, monkeypatch, delivery_settings, chunk, ending):
    monkeypatch.setattr(deliver_smtp, "DATA_CHUNK", chunk)
    body = body_with_dots(300 if chunk < 100 else 40_000) + ending
    sent = message(body, subject=f"chunk-{chunk}")
    result = deliver_to(box, sent, delivery_settings)[RECIPIENT]
    assert result.status == "sent", result
    stored = only_queued(box)
    # What lacks a final line end gets one before the final dot.
    expected = sent if sent.endswith(b"\r\n") else sent + b"\r\n"
    assert stored.endswith(expected[expected.index(b"\r\n\r\n"):])


@pytest.mark.parametrize("chunk", [7, 64 * 1024])
def test_the_final_dot_leaves_in_the_same_write_as_the_last_chunk(
        box, monkeypatch, delivery_settings, chunk):
    """A dot written on its own waits, under Nagle, for the receiver's ACK
    of the chunk before it; a receiver with nothing to answer yet delays
    that ACK by 40 ms. It capped relaying at about 430 messages a second."""
    monkeypatch.setattr(deliver_smtp, "DATA_CHUNK", chunk)
    sent = message(body_with_dots(300), subject=f"last-write-{chunk}")
    writes = []
    real_write = asyncio.StreamWriter.write
    # The box in this process writes through StreamWriter too: only the
    # writer that sent the envelope is the delivery's.
    monkeypatch.setattr(asyncio.StreamWriter, "write", lambda self, data: (
        writes.append((self, bytes(data))), real_write(self, data))[1])
    result = deliver_to(box, sent, delivery_settings)[RECIPIENT]
    assert result.status == "sent", result
    client = next(writer for writer, data in writes if data.startswith(b"MAIL FROM:"))
    writes = [data for writer, data in writes if writer is client]
    envelope = next(n for n, data in enumerate(writes) if data.startswith(b"MAIL FROM:"))
    data_writes = writes[envelope + 1:-1]   # after the envelope, before the QUIT
    assert writes[envelope].endswith(b"DATA\r\n") and writes[-1] == b"QUIT\r\n"
    assert len(data_writes) > (2 if chunk < 100 else 0)
    assert data_writes[-1].endswith(b"\r\n.\r\n") and len(data_writes[-1]) > len(b".\r\n")
    assert b"".join(data_writes) == b"".join(deliver_smtp.data_chunks(sent))
    assert only_queued(box).endswith(sent[sent.index(b"\r\n\r\n"):])


def test_removing_no_field_returns_the_message_itself_and_removing_one_keeps_the_body():
    big = message(b"line\r\n" * 200_000)
    assert without_fields(big, lambda name, value: False) is big
    dropped = without_fields(big, lambda name, value: name == "subject")
    assert b"Subject:" not in dropped and dropped.endswith(b"\r\n\r\n" + b"line\r\n" * 200_000)
    assert len(dropped) == len(big) - len(b"Subject: dots\r\n")
