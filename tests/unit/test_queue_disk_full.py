"""The queue when its disk is full, in-process, on a real small tmpfs: a
write that runs out of space leaves no partial file, and a state change the
queue manager cannot write (a deferral's rewrite, a bounce) never leaves the
message in active: it is retried, and saved once space returns. Real parts:
the spool on a tmpfs, submit(), the SMTP delivery agent and aiosmtpd servers
on loopback for the office's LAN server and the Internet smarthost."""

from __future__ import annotations

import asyncio
import errno
import os
import time

import pytest

from firmware.config.watch import Watcher
from firmware.mail.deliver import SmtpDelivery
from firmware.mail.qmgr import QueueManager
from firmware.mail.queue import Envelope, Recipient, Spool, new_queue_id, out_of_space
from firmware.mail.submit import Submission, submit, submit_async
from tests.support.tmpfs import fill, free_bytes, small_tmpfs

TRY_LATER = "451 4.3.0 mailbox busy, try later"
NO_SUCH_USER = "550 5.1.1 no such user"
BODY = b"x" * 78 + b"\r\n"


@pytest.fixture
def queue_fs(tmp_path):
    with small_tmpfs(tmp_path / "fs", "1m") as directory:
        yield directory


def message(size: int, subject: str = "hello") -> bytes:
    head = f"From: alice@far.test\r\nTo: bob@example.com\r\nSubject: {subject}\r\n\r\n".encode()
    return head + BODY * (size // len(BODY))


def envelope() -> Envelope:
    return Envelope(id=new_queue_id(), sender="alice@far.test",
                    recipients=[Recipient("bob@example.com")], received=time.time())


def test_a_write_that_runs_out_of_space_leaves_no_partial_file(queue_fs):
    spool = Spool(queue_fs / "queue")
    spool.create()
    free_before = free_bytes(queue_fs)
    too_big = envelope()
    with pytest.raises(OSError) as failed:
        spool.write(too_big, message(2 * 1024 * 1024))
    assert out_of_space(failed.value) and failed.value.errno == errno.ENOSPC
    assert os.listdir(spool.tmp) == [] and spool.ids("incoming") == []
    assert free_bytes(queue_fs) == free_before
    # The same id can be written again: nothing of the failed try is in the way.
    spool.write(too_big, message(1000))
    assert spool.ids("incoming") == [too_big.id]


def test_submit_from_smtpd_out_of_space_raises_and_cleans_up(queue_fs, store):
    spool = Spool(queue_fs / "queue")
    spool.create()
    announced = []
    settings = Watcher(store).current

    async def scenario():
        submission = Submission("alice@far.test", ["bob@example.com"],
                                message(2 * 1024 * 1024), "smtpd")
        with pytest.raises(OSError) as failed:
            await submit_async(spool, submission, announced.append, settings)
        return failed.value
    error = asyncio.run(scenario())
    assert out_of_space(error)
    assert os.listdir(spool.tmp) == [] and spool.ids("incoming") == [] and announced == []


class Manager:
    """A QueueManager on the real clock with one-second retries, its spool on
    the small tmpfs."""

    def __init__(self, queue_fs, store, lan, internet, **settings):
        store.set_many({"email.domain": "example.com", "email.mail_server_address": lan.address,
                        "email.relay_server_address": internet.address,
                        "email.retry_minimum_seconds": 1, "email.retry_maximum_seconds": 1,
                        **settings})
        self.fs = queue_fs
        self.ballast = queue_fs / "ballast"
        self.spool = Spool(queue_fs / "queue")
        self.spool.create()
        self.watcher = Watcher(store)
        self.delivery = SmtpDelivery(helo_name="gatebox.test")
        agents = {"lan": self.delivery, "smarthost": self.delivery, "mx": self.delivery}
        self.qmgr = QueueManager(self.spool, self.watcher, agents)
        self.task = None

    def send(self, size: int = 100 * 1024) -> str:
        return submit(self.spool, Submission("alice@far.test", ["bob@example.com"], message(size),
                                             "smtpd"),
                      self.qmgr.notify, self.watcher.current)

    def fill_disk(self, leave: int = 0):
        fill(self.ballast, leave)

    async def __aenter__(self):
        self.task = asyncio.get_running_loop().create_task(self.qmgr.run())
        return self

    async def __aexit__(self, *exc):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.delivery.close_idle()

    def file_envelope(self, qid: str):
        return self.spool.read_envelope("deferred", qid) if qid in self.spool.ids("deferred") \
            else None

    def pending(self) -> list[str]:
        return [q for s in ("incoming", "active", "deferred") for q in self.spool.ids(s)]

    def waiting_unsaved(self, qid: str, attempts: int = 1):
        """In deferred, not active, its file not rewritten, and the envelope
        in memory having had at least this many attempts."""
        unsaved = self.qmgr._unsaved.get(qid)
        file = self.file_envelope(qid)
        return (unsaved is not None and unsaved[0] == "deferred" and
                unsaved[1].attempts >= attempts and file is not None and file.attempts == 0
                and self.spool.ids("active") == [])

    async def until(self, predicate, what: str, timeout: float = 20.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (value := predicate()):
            assert loop.time() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)
        return value


def test_a_deferral_that_cannot_be_written_waits_in_deferred_and_is_saved_when_space_returns(
        queue_fs, store, lan, internet):
    lan.recorder.reject["bob@example.com"] = TRY_LATER

    async def scenario():
        # A long retry: what writes the envelope is the save pass, not a new attempt.
        async with Manager(queue_fs, store, lan, internet,
                           **{"email.retry_minimum_seconds": 3600,
                              "email.retry_maximum_seconds": 3600}) as box:
            qid = box.send()
            box.fill_disk(leave=16 * 1024)      # less than one rewrite of the message
            await box.until(lambda: box.waiting_unsaved(qid), "the failed deferral")
            assert box.qmgr._unsaved[qid][1].last_error.startswith(TRY_LATER)

            box.ballast.unlink()
            saved = await box.until(lambda: qid not in box.qmgr._unsaved and
                                    (lambda e: e if e and e.attempts == 1 else None)(
                                        box.file_envelope(qid)), "the envelope saved")
            assert TRY_LATER in saved.last_error and saved.next_try > time.time() + 3000
            assert os.listdir(box.spool.tmp) == []
    asyncio.run(scenario())


def test_a_full_disk_does_not_stop_retries_and_delivery_frees_it(queue_fs, store, lan, internet):
    lan.recorder.reject["bob@example.com"] = TRY_LATER

    async def scenario():
        async with Manager(queue_fs, store, lan, internet) as box:
            first, second = box.send(), box.send()
            box.fill_disk()
            for qid in (first, second):
                # Attempt 2 and later: the message keeps being tried from deferred.
                await box.until(lambda: box.waiting_unsaved(qid, attempts=2),
                                f"{qid} retried while the disk is full")
            # The LAN server is back; the disk is still full.
            del lan.recorder.reject["bob@example.com"]
            await box.until(lambda: not box.pending(), "the queue to empty")
            assert len(lan.recorder.for_recipient("bob@example.com")) == 2
            assert box.qmgr._unsaved == {}
    asyncio.run(scenario())


def test_a_bounce_that_cannot_be_written_is_made_again_when_space_returns(
        queue_fs, store, lan, internet):
    lan.recorder.reject["bob@example.com"] = NO_SUCH_USER

    async def scenario():
        async with Manager(queue_fs, store, lan, internet) as box:
            qid = box.send()
            box.fill_disk()
            await box.until(lambda: box.waiting_unsaved(qid, attempts=2),
                            "attempts whose bounce could not be queued")
            assert box.qmgr._unsaved[qid][1].recipients[0].status == "pending"
            assert internet.received == []

            box.ballast.unlink()
            [dsn] = await box.until(lambda: internet.recorder.for_recipient("alice@far.test"),
                                    "the non-delivery notification")
            await box.until(lambda: not box.pending(), "the queue to empty")
            assert dsn.sender == "" and NO_SUCH_USER in dsn.content.decode()
            assert lan.recorder.for_recipient("bob@example.com") == []
    asyncio.run(scenario())
