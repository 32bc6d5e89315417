"""The queue manager in-process, on its injected clock: retry backoff, the
queue lifetime and its bounce, the delivery schedule's windows holding
Internet mail. Real parts: the spool on disk, submit() as the way in, the
SMTP delivery agent, and two aiosmtpd servers on loopback (the office's LAN
mail server and the Internet smarthost). Only the clock is the test's."""

from __future__ import annotations

import asyncio
import datetime
import zoneinfo

import pytest

from firmware.config.watch import Watcher
from firmware.mail.deliver import SmtpDelivery
from firmware.mail.qmgr import WAITING_FOR_SCHEDULE, QueueManager
from firmware.mail.queue import Spool
from firmware.mail.submit import Submission, submit

UTC = zoneinfo.ZoneInfo("UTC")
TRY_LATER = "451 4.3.0 mailbox busy, try later"


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


MONDAY_MORNING = at("2026-03-02 10:05")


class Manager:
    """A QueueManager running on the test's event loop and clock."""

    def __init__(self, data, store, lan, internet, now: float, **settings):
        store.set_many({"email.domain": "example.com", "email.mail_server_address": lan.address,
                        "email.relay_server_address": internet.address, **settings})
        self.now = now
        self.spool = Spool(data / "queue")
        self.spool.create()
        self.watcher = Watcher(store)
        self.delivery = SmtpDelivery(helo_name="gatebox.test")
        agents = {"lan": self.delivery, "smarthost": self.delivery, "mx": self.delivery}
        self.qmgr = QueueManager(self.spool, self.watcher, agents, clock=lambda: self.now)
        self.task = None

    async def __aenter__(self):
        self.task = asyncio.get_running_loop().create_task(self.qmgr.run())
        return self

    async def __aexit__(self, *exc):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.delivery.close_idle()

    def send(self, to: str, sender: str = "alice@far.test", subject: str = "hello") -> str:
        message = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
        return submit(self.spool, Submission(sender, [to], message, "smtpd", received=self.now),
                      self.qmgr.notify, self.watcher.current)

    def set_clock(self, now: float):
        self.now = now
        self.qmgr.wake()

    def deferred(self, qid: str):
        return self.spool.read_envelope("deferred", qid) if qid in self.spool.ids("deferred") else None

    def pending(self) -> list[str]:
        return [q for s in ("incoming", "active", "deferred") for q in self.spool.ids(s)]

    async def until(self, predicate, what: str, timeout: float = 15.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (value := predicate()):
            assert loop.time() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)
        return value

    async def attempted(self, qid: str, attempts: int):
        """The envelope once the attempt numbered `attempts` has been deferred."""
        return await self.until(lambda: (lambda e: e if e and e.attempts == attempts else None)(
            self.deferred(qid)), f"{qid} deferred after attempt {attempts}")

    async def witness(self, lan) -> None:
        """Push a LAN message through the manager and wait for it: by then the
        manager has long acted on whatever it was told before."""
        subject = f"witness {len(lan.received)}"
        self.send("witness@example.com", subject=subject)
        await self.until(lambda: any(r.message["Subject"] == subject for r in lan.received),
                         "the witness message at the LAN server")


def test_retries_back_off_exponentially_up_to_the_maximum(tmp_path, store, lan, internet):
    lan.recorder.reject["bob@example.com"] = TRY_LATER

    async def scenario():
        async with Manager(tmp_path, store, lan, internet, MONDAY_MORNING,
                           **{"email.retry_minimum_seconds": 60,
                              "email.retry_maximum_seconds": 300}) as box:
            qid = box.send("bob@example.com")
            intervals = []
            for attempt in range(1, 6):
                deferred = await box.attempted(qid, attempt)
                assert TRY_LATER in deferred.last_error
                intervals.append(deferred.next_try - box.now)
                if attempt == 2:
                    # Just before it is due it stays put, with its attempt count.
                    box.set_clock(deferred.next_try - 1)
                    await box.witness(lan)
                    assert box.deferred(qid).attempts == 2
                if attempt < 5:
                    box.set_clock(deferred.next_try)
            assert intervals == [60, 120, 240, 300, 300]

            del lan.recorder.reject["bob@example.com"]
            box.set_clock(deferred.next_try)
            await box.until(lambda: lan.recorder.for_recipient("bob@example.com"), "delivery to bob")
            await box.until(lambda: not box.pending(), "the queue to empty")
            assert len(lan.recorder.for_recipient("bob@example.com")) == 1
    asyncio.run(scenario())


def test_a_message_outliving_the_queue_lifetime_bounces_to_its_sender(tmp_path, store, lan,
                                                                      internet):
    lan.recorder.reject["bob@example.com"] = TRY_LATER

    async def scenario():
        async with Manager(tmp_path, store, lan, internet, MONDAY_MORNING,
                           **{"email.max_queue_lifetime_days": 1,
                              "email.retry_minimum_seconds": 3600,
                              "email.retry_maximum_seconds": 43200}) as box:
            qid = box.send("bob@example.com", subject="never arrives")
            first = await box.attempted(qid, 1)
            box.set_clock(first.next_try)
            await box.attempted(qid, 2)
            # Still inside the lifetime: deferred, and no notification made.
            assert box.pending() == [qid] and internet.received == []

            box.set_clock(MONDAY_MORNING + 86400)
            [dsn] = await box.until(lambda: internet.recorder.for_recipient("alice@far.test"),
                                    "the non-delivery notification at the smarthost")
            await box.until(lambda: not box.pending(), "the queue to empty")
            assert dsn.sender == ""   # a bounce is sent from the null sender
            text = dsn.content.decode()
            assert "Action: failed" in text and "bob@example.com" in text
            assert "expired after 1 days" in text and TRY_LATER in text
            assert lan.recorder.for_recipient("bob@example.com") == []
    asyncio.run(scenario())


SCHEDULED = {"email.send_mode": "same_time", "email.business_schedule": "30",
             "email.evening_schedule": "120", "email.weekend_schedule": "240"}


@pytest.mark.parametrize("window, now, send_at", [
    ("business", "2026-03-02 10:05", "2026-03-02 10:30"),   # every 30 minutes, 08:00-17:00
    ("evening", "2026-03-02 18:10", "2026-03-02 20:00"),    # every 120 minutes
    ("weekend", "2026-03-07 11:20", "2026-03-07 12:00"),    # Saturday, every 240 minutes
    # 17:00 is no evening tick (every 2 hours from midnight): 18:00 is.
    ("business into evening", "2026-03-02 16:50", "2026-03-02 18:00"),
    # 00:00 Saturday is a weekend tick, before the evening's next.
    ("Friday evening into the weekend", "2026-03-06 23:30", "2026-03-07 00:00"),
])
def test_the_schedule_holds_internet_mail_until_its_window_sends(tmp_path, store, lan, internet,
                                                                 window, now, send_at):
    async def scenario():
        async with Manager(tmp_path, store, lan, internet, at(now), **SCHEDULED) as box:
            outgoing = box.send("carol@far.test", sender="bob@example.com", subject="out")
            # LAN mail is never held by the schedule.
            box.send("dave@example.com", subject="in")
            await box.until(lambda: lan.recorder.for_recipient("dave@example.com"), "the LAN message")

            held = await box.until(lambda: box.deferred(outgoing), "the Internet message held")
            assert held.next_try == at(send_at)
            assert held.attempts == 0 and held.last_error == WAITING_FOR_SCHEDULE

            box.set_clock(at(send_at) - 60)
            await box.witness(lan)
            assert box.deferred(outgoing).next_try == at(send_at)
            assert internet.received == []

            box.set_clock(at(send_at))
            [sent] = await box.until(lambda: internet.recorder.for_recipient("carol@far.test"),
                                     "the Internet message at the smarthost")
            assert sent.message["Subject"] == "out"
            await box.until(lambda: not box.pending(), "the queue to empty")
    asyncio.run(scenario())


def test_a_never_window_waits_for_the_next_window_that_sends(tmp_path, store, lan, internet):
    settings = {**SCHEDULED, "email.weekend_schedule": "never"}

    async def scenario():
        async with Manager(tmp_path, store, lan, internet, at("2026-03-07 11:20"), **settings) as box:
            outgoing = box.send("carol@far.test", sender="bob@example.com")
            held = await box.until(lambda: box.deferred(outgoing), "the Internet message held")
            # No weekend sending: Monday 00:00 is before the business day, the
            # evening window's first tick.
            assert held.next_try == at("2026-03-09 00:00")
    asyncio.run(scenario())


def test_immediate_sending_holds_nothing(tmp_path, store, lan, internet):
    async def scenario():
        async with Manager(tmp_path, store, lan, internet, at("2026-03-07 11:20")) as box:
            box.send("carol@far.test", sender="bob@example.com", subject="now")
            [sent] = await box.until(lambda: internet.recorder.for_recipient("carol@far.test"),
                                     "the Internet message at the smarthost")
            assert sent.message["Subject"] == "now"
            await box.until(lambda: not box.pending(), "the queue to empty")
    asyncio.run(scenario())
