"""Unit tests of the mail stack's pure parts: addresses, the queue files and
their recovery, schedule windows, enhanced codes, duplicates, bounces."""

import asyncio
import dataclasses
import datetime
import json
import os
import zoneinfo

import pytest

from firmware.mail import addresses, bounce, schedule
from firmware.mail.headers import summary
from firmware.mail.queue import (Envelope, NotInQueue, QueueError, Recipient, Spool,
                                 new_queue_id)
from firmware.mail.duplicates import DuplicateFilter
from firmware.mail.smtpd import with_enhanced_code


def envelope(**overrides):
    values = dict(id=new_queue_id(), sender="a@example.com", recipients=[Recipient("b@example.com")],
                  received=1000.0)
    values.update(overrides)
    return Envelope(**values)


@pytest.mark.parametrize("raw, local, domain, route, routing", [
    ("<bob@Example.COM>", "bob", "example.com", "", False),
    ("bob%far.test@example.com", "bob%far.test", "example.com", "", True),
    ('"bob@far.test"@example.com', '"bob@far.test"', "example.com", "", True),
    ("@example.com:bob@far.test", "bob", "far.test", "@example.com", False),
    ("far.test!bob", "far.test!bob", "", "", True),
    ("bob@[127.0.0.1]", "bob", "[127.0.0.1]", "", False),
])
def test_address_parsing(raw, local, domain, route, routing):
    parsed = addresses.parse(raw)
    assert (parsed.local, parsed.domain, parsed.source_route, parsed.routing_characters) == \
        (local, domain, route, routing)


def test_trusted_networks_membership():
    nets = "10.10.1.2,10.10.1.0/24,fd00::/8"
    assert addresses.in_networks("10.10.1.77", nets)
    assert addresses.in_networks("::ffff:10.10.1.5", nets)
    assert addresses.in_networks("fd00::1", nets)
    assert not addresses.in_networks("10.10.2.1", nets)
    assert addresses.in_networks("203.0.113.9", "*")
    assert addresses.literal_ip("[IPv6:::1]") is not None


def test_queue_file_round_trip_and_states(tmp_path):
    spool = Spool(tmp_path)
    spool.create()
    env = envelope(subject="hi")
    spool.write(env, b"Subject: hi\r\n\r\nbody\r\n")
    assert spool.locate(env.id) == "incoming"
    loaded, message = spool.load("incoming", env.id)
    assert loaded == env and message.endswith(b"body\r\n")
    spool.move(env.id, "incoming", "hold")
    assert spool.ids("hold") == [env.id]
    with pytest.raises(NotInQueue):
        spool.move(env.id, "incoming", "deferred")
    with pytest.raises(NotInQueue):
        spool.load("incoming", "../../etc/passwd")


def test_envelope_json_is_what_asdict_gives_and_reads_back_equal():
    envelope = Envelope(id="Q1", sender="a@far.test", received=1.5, attempts=2, size=10,
                        recipients=[Recipient("b@example.com"),
                                    Recipient("c@example.com", "failed", "550 no", "C@x")],
                        subject="ü\r\n\"", is_bounce=True)
    assert json.loads(envelope.to_json()) == dataclasses.asdict(envelope)
    assert list(json.loads(envelope.to_json())) == [f.name for f in dataclasses.fields(Envelope)]
    assert Envelope.from_json(envelope.to_json()) == envelope


def test_recovery_requeues_active_drops_tmp_and_isolates_corrupt(tmp_path):
    spool = Spool(tmp_path)
    spool.create()
    in_flight, also_deferred = envelope(), envelope()
    spool.write(in_flight, b"x", state="active")
    spool.write(also_deferred, b"y", state="active")
    spool.write(also_deferred, b"y", state="deferred")
    (tmp_path / "tmp" / "half-written").write_bytes(b"GATEBOX-QUEUE 1\n{")
    (tmp_path / "incoming" / "garbage").write_bytes(b"not a queue file")
    # The start-up order of the stack: smtpd drops unfinished files before it
    # listens, then the queue manager puts back what it was delivering.
    dropped = spool.drop_unfinished()
    requeued = spool.requeue_active()
    assert dropped == {"tmp_dropped": 1}
    assert requeued == {"requeued": 1, "duplicates": 1, "corrupt": 1}
    assert spool.ids("incoming") == [in_flight.id]
    assert spool.ids("deferred") == [also_deferred.id]
    assert spool.ids("corrupt") == ["garbage"]
    assert not spool.ids("active") and not os.listdir(tmp_path / "tmp")
    with pytest.raises(QueueError):
        spool.load("corrupt", "garbage")


def test_enqueue_commits_concurrent_messages_in_few_batches(tmp_path):
    spool = Spool(tmp_path)
    spool.create()
    envelopes = [envelope() for _ in range(200)]

    async def many():
        return await asyncio.gather(*(spool.enqueue(e, b"Subject: x\r\n\r\nbody\r\n") for e in envelopes))
    try:
        placed = asyncio.run(many())
        batches = spool._committer.batches
    finally:
        spool.close()
    assert sorted(p.name for p in placed) == sorted(e.id for e in envelopes)
    assert sorted(spool.ids("incoming")) == sorted(e.id for e in envelopes)
    assert not os.listdir(tmp_path / "tmp")
    # One directory fsync per batch (firmware/mail/commit_worker.py).
    assert 1 <= batches < 100, "concurrent messages share a commit"


def test_enhanced_codes_are_added_where_missing():
    assert with_enhanced_code("250 OK") == "250 2.0.0 OK"
    assert with_enhanced_code("503 Error: need MAIL command") == "503 5.5.1 Error: need MAIL command"
    assert with_enhanced_code("550 5.7.1 Relay access denied") == "550 5.7.1 Relay access denied"
    assert with_enhanced_code("354 End data with <CR><LF>.<CR><LF>") == "354 End data with <CR><LF>.<CR><LF>"


def test_duplicate_filter_window():
    dups = DuplicateFilter(window=60)
    key = dups.key("10.0.0.5", "s@x", ["b@y", "a@y"], "<a@b>", b"body")
    assert dups.key("10.0.0.5", "s@x", ["a@y"], "", b"body") is None
    assert dups.lookup(key, 0) is None
    dups.remember(key, "QID1", 0)
    assert dups.lookup(key, 30) == "QID1"
    # The recipients' order does not matter; who they are does.
    assert dups.lookup(dups.key("10.0.0.5", "s@x", ["a@y", "b@y"], "<a@b>", b"body"), 30) == "QID1"
    assert dups.lookup(dups.key("10.0.0.5", "s@x", ["c@y"], "<a@b>", b"body"), 30) is None
    assert dups.lookup(dups.key("10.0.0.5", "t@x", ["a@y", "b@y"], "<a@b>", b"body"), 30) is None
    assert dups.lookup(dups.key("10.0.0.6", "s@x", ["a@y", "b@y"], "<a@b>", b"body"), 30) is None
    assert dups.lookup(key, 100) is None


SETTINGS = {"email.send_mode": "same_time", "email.business_week": "mon,tue,wed,thu,fri",
            "email.business_day": "08:00-17:00", "email.business_schedule": "15",
            "email.evening_schedule": "60", "email.weekend_schedule": "never",
            "system.timezone": "Europe/Berlin"}


def at(text):
    """A wall-clock time in the box's time zone."""
    return datetime.datetime.fromisoformat(text).replace(
        tzinfo=zoneinfo.ZoneInfo(SETTINGS["system.timezone"])).timestamp()


def test_schedule_windows_and_next_send_time():
    monday_morning = at("2026-11-23T09:07:30")
    local = datetime.datetime.fromtimestamp(monday_morning, zoneinfo.ZoneInfo("Europe/Berlin"))
    assert schedule.window(local, SETTINGS) == "business"
    # The same instant is Monday evening in Tokyo.
    tokyo = dict(SETTINGS, **{"system.timezone": "Asia/Tokyo"})
    assert schedule.next_send_time(monday_morning, tokyo) == at("2026-11-23T10:00:00")
    assert schedule.next_send_time(monday_morning, SETTINGS) == at("2026-11-23T09:15:00")
    assert schedule.next_send_time(at("2026-11-23T17:20:00"), SETTINGS) == at("2026-11-23T18:00:00")
    # Weekend is "never": Saturday's mail waits for Monday's first tick.
    assert schedule.next_send_time(at("2026-11-21T12:00:00"), SETTINGS) == at("2026-11-23T00:00:00")
    immediate = dict(SETTINGS, **{"email.send_mode": "immediately"})
    assert schedule.next_send_time(monday_morning, immediate) == monday_morning


BOUNCE_SETTINGS = {"system.hostname": "gw.example.com", "email.domain": "example.com",
                   "email.admin_address": "", "email.forward_undeliverable_to_admin": False}


def test_bounces_go_to_the_sender_never_about_bounces():
    failed = [Recipient("x@far.test", status="failed", detail="550 5.1.1 no such user")]
    dsn = bounce.bounce_submission(envelope(), failed, b"Subject: s\r\n\r\nb", BOUNCE_SETTINGS)
    assert dsn.recipients == ["a@example.com"] and dsn.sender == "" and dsn.origin == "bounce"
    null_sender = bounce.bounce_submission(envelope(sender=""), failed, b"", BOUNCE_SETTINGS)
    assert null_sender.recipients == ["postmaster@example.com"]
    assert bounce.bounce_submission(envelope(is_bounce=True), failed, b"", BOUNCE_SETTINGS) is None
    copied = bounce.bounce_submission(envelope(), failed, b"", dict(
        BOUNCE_SETTINGS, **{"email.forward_undeliverable_to_admin": True,
                            "email.admin_address": "it@example.com"}))
    assert copied.recipients == ["a@example.com", "it@example.com"]


def test_header_summary_counts_hops_and_decodes_subject():
    message = (b"Received: from a\r\nReceived: from b\r\n\tby c\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
               b"Message-ID: <m@x>\r\nFrom: Ann <ann@x>\r\n\r\nReceived: not a header\r\n")
    info = summary(message)
    assert (info.received_count, info.subject, info.message_id, info.header_from) == \
        (2, "café", "<m@x>", "Ann <ann@x>")
