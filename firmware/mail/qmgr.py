"""The queue manager: takes messages from incoming and due ones from
deferred, routes every pending recipient, delivers with a concurrency limit
per destination, retries with exponential backoff, honours the delivery
schedule and bounces what fails for good or outlives the queue lifetime.

A state change that cannot be written (the disk is full: a deferral
rewrites the whole file, a bounce is a new file) never leaves the message
in active until a restart. The file is renamed to deferred as it is (a
rename needs no space), the newer envelope waits in memory and is used for
the next attempt, and a save pass writes it as soon as space returns. A
notification that cannot be queued leaves its recipients pending, so the
next attempt fails them, and notifies, again."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import logging
import os
import time

from . import bounce, schedule
from .deliver import Result
from .queue import Envelope, NotInQueue, QueueError, Spool, out_of_space
from .route import Destination, RouteError, route
from .submit import submit

log = logging.getLogger("gatebox.qmgr")

RESCAN_SECONDS = 5.0
# A delivery holds its message in memory. Messages of LARGE octets or more
# share LARGE_BUDGET between them: twenty 8 MB messages are delivered a few
# at a time instead of 160 MB at once; a larger one alone still goes.
LARGE = 256 * 1024
LARGE_BUDGET = 32 * 1024 * 1024
SAVE_RETRY_SECONDS = 1.0
WAITING_FOR_SCHEDULE = "waiting for the scheduled send time (Email Server > Scheduling)"


class QueueManager:
    def __init__(self, spool: Spool, watcher, agents: dict, *, concurrency: int = 40,
                 per_destination: int = 20, extra_routes=lambda: (), clock=time.time,
                 stats=None):
        self.spool = spool
        self.watcher = watcher
        self.agents = agents            # destination kind -> agent with .deliver(...), async or not
        self.extra_routes = extra_routes
        self.clock = clock
        self.stats = stats
        self.per_destination = per_destination
        self._slots = asyncio.Semaphore(concurrency)
        self._destinations: dict[str, asyncio.Semaphore] = {}
        self._ready: asyncio.Queue = asyncio.Queue()
        self._queued: set[str] = set()
        self._deferred: list = []
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        # qid -> (the state its file is in, an envelope newer than the file's)
        self._unsaved: dict[str, tuple[str, Envelope]] = {}
        # qid -> set when the message is no longer being worked on
        self._busy: dict[str, asyncio.Event] = {}
        self._large = ByteBudget(LARGE_BUDGET)

    # ---- feeding -----------------------------------------------------------------
    def notify(self, qid: str):
        """smtpd (or a bounce) placed qid in incoming."""
        if qid not in self._queued:
            self._queued.add(qid)
            self._ready.put_nowait(qid)

    def wake(self):
        """Look for due deferred mail now rather than at the next planned
        look: the clock jumped (a set time, an injected clock) or a flush."""
        self._wake.set()

    def _scan(self):
        for qid in self.spool.ids("incoming"):
            self.notify(qid)
        known = {qid for _, qid in self._deferred}
        for qid in self.spool.ids("deferred"):
            if qid in known:
                continue
            try:
                envelope = self.spool.read_envelope("deferred", qid)
            except QueueError:
                continue
            heapq.heappush(self._deferred, (envelope.next_try, qid))

    # ---- main loops -----------------------------------------------------------------
    async def run(self):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._scan)
        await asyncio.gather(self._take_incoming(), self._take_deferred(), self._rescan(),
                             self._save_unsaved())

    async def _rescan(self):
        # Files placed by other processes (the CLI's release and flush) are
        # noticed here.
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(RESCAN_SECONDS)
            await loop.run_in_executor(None, self._scan)
            self._wake.set()

    async def _take_incoming(self):
        while True:
            qid = await self._ready.get()
            self._queued.discard(qid)
            await self._slots.acquire()
            self._spawn(self._process("incoming", qid))

    async def _take_deferred(self):
        while True:
            now = self.clock()
            while self._deferred and self._deferred[0][0] <= now:
                _, qid = heapq.heappop(self._deferred)
                await self._slots.acquire()
                self._spawn(self._process("deferred", qid))
            delay = min(self._deferred[0][0] - now, RESCAN_SECONDS) if self._deferred else RESCAN_SECONDS
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(delay, 0.01))
            except asyncio.TimeoutError:
                pass

    def _spawn(self, coroutine):
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._slots.release())

    @contextlib.asynccontextmanager
    async def _exclusive(self, qid: str):
        """One piece of work on a message at a time: an attempt, or the save
        pass writing its envelope."""
        while (done := self._busy.get(qid)) is not None:
            await done.wait()
        self._busy[qid] = asyncio.Event()
        try:
            yield
        finally:
            self._busy.pop(qid).set()

    # ---- one message ---------------------------------------------------------------
    async def _process(self, state: str, qid: str):
        async with self._exclusive(qid):
            await self._attempt(state, qid)

    def _claim(self, state: str, qid: str, unsaved) -> tuple[Envelope, bytes]:
        """The message for an attempt, in active; its envelope from memory
        when the last state change could not be written."""
        if unsaved is not None:
            where, envelope = unsaved
            for source in dict.fromkeys((where, state)):
                try:
                    if source != "active":
                        self.spool.move_unsynced(qid, source, "active")
                    return envelope, self.spool.load("active", qid)[1]
                except NotInQueue:
                    continue  # moved by the administrator meanwhile
        return self.spool.claim(state, qid)

    async def _attempt(self, state: str, qid: str):
        try:
            size = os.stat(self.spool.path(state, qid)).st_size
        except OSError:
            # Moved meanwhile, or its envelope is unsaved and the file still
            # elsewhere: the claim finds out, in a thread (its size is unknown).
            await self._attempt_loaded(state, qid, small=False)
            return
        if size < LARGE:
            await self._attempt_loaded(state, qid, small=True)
            return
        await self._large.acquire(size)
        try:
            await self._attempt_loaded(state, qid, small=False)
        finally:
            self._large.release(size)

    async def _attempt_loaded(self, state: str, qid: str, small: bool):
        loop = asyncio.get_running_loop()
        unsaved = self._unsaved.pop(qid, None)
        try:
            envelope, message = await _file_work(small, self._claim, state, qid, unsaved)
        except NotInQueue:
            return  # held, deleted or taken by another pass meanwhile
        except OSError:
            if unsaved is not None:
                self._unsaved[qid] = unsaved
            raise
        except QueueError as error:
            log.error("%s: %s; moved to corrupt", qid, error)
            await loop.run_in_executor(None, self.spool.move, qid, "active", "corrupt")
            return
        try:
            await self._deliver_message(state, envelope, message)
        except Exception:
            log.exception("%s: delivery attempt failed unexpectedly; will retry", qid)
            envelope.last_error = "internal error during delivery"
            await self._defer(envelope, self.clock() + self.watcher.current["email.retry_minimum_seconds"])

    async def _deliver_message(self, state: str, envelope: Envelope, message: bytes):
        settings = self.watcher.current
        now = self.clock()
        attempted = list(envelope.pending)
        groups: dict[str, tuple[Destination, list]] = {}
        wait_until = None
        due_by_schedule = state == "deferred" and envelope.next_try <= now
        for recipient in envelope.pending:
            try:
                address, destination = route(recipient.original or recipient.address,
                                             envelope.direction, settings, self.extra_routes())
            except RouteError as error:
                recipient.detail = str(error)
                if error.permanent:
                    recipient.status = "failed"
                    self._log_result(envelope, recipient, "", "bounced", now)
                else:
                    self._log_result(envelope, recipient, "", "deferred", now)
                continue
            if address != recipient.address:
                recipient.original = recipient.original or recipient.address
                recipient.address = address
            if schedule.is_internet(destination) and not due_by_schedule:
                send_at = schedule.next_send_time(now, settings)
                if send_at > now + 1:
                    recipient.detail = WAITING_FOR_SCHEDULE
                    wait_until = send_at if wait_until is None else min(wait_until, send_at)
                    continue
            groups.setdefault(destination.key, (destination, []))[1].append(recipient)

        outcomes = await asyncio.gather(*(self._deliver_group(envelope, message, dest, rcpts, settings)
                                          for dest, rcpts in groups.values()))
        for results in outcomes:
            for recipient, result in results:
                recipient.detail = result.detail
                if result.status == "sent":
                    recipient.status = "sent"
                elif result.status == "perm":
                    recipient.status = "failed"
                self._log_result(envelope, recipient, result.relay,
                                 {"sent": "sent", "perm": "bounced", "temp": "deferred"}[result.status],
                                 now)
        await self._finish(envelope, message, settings, attempted, wait_until)

    async def _deliver_group(self, envelope, message, destination: Destination, recipients, settings):
        agent = self.agents.get(destination.kind)
        if agent is None:
            return [(r, Result("temp", f"no delivery agent for {destination.kind} mail"))
                    for r in recipients]
        limit = self._destinations.setdefault(destination.key, asyncio.Semaphore(self.per_destination))
        arguments = (destination, envelope.sender, [r.address for r in recipients], message,
                     settings, envelope.body_8bit)
        async with limit:
            if inspect.iscoroutinefunction(agent.deliver):
                results = await agent.deliver(*arguments)
            else:
                # The SoftPaks' agents block (files, LMTP): a worker thread each.
                results = await asyncio.get_running_loop().run_in_executor(
                    None, agent.deliver, *arguments)
        return [(r, results.get(r.address, Result("temp", "no result from delivery agent")))
                for r in recipients]

    async def _finish(self, envelope: Envelope, message: bytes, settings, attempted, wait_until):
        loop = asyncio.get_running_loop()
        now = self.clock()
        lifetime = settings["email.max_queue_lifetime_days"] * 86400
        newly_failed = [r for r in attempted if r.status == "failed"]
        if envelope.pending and now - envelope.received >= lifetime:
            for recipient in envelope.pending:
                recipient.status = "failed"
                recipient.detail = (f"message expired after {settings['email.max_queue_lifetime_days']} "
                                    f"days in the queue; last error: {recipient.detail or 'none'}")
                self._log_result(envelope, recipient, "", "expired", now)
                newly_failed.append(recipient)
        if newly_failed:
            try:
                await self._bounce(envelope, newly_failed, message, settings)
            except OSError as error:
                log.error("%s: cannot queue the non-delivery notification (%s); its recipients "
                          "are tried again at the next attempt", envelope.id, error)
                for recipient in newly_failed:
                    recipient.status = "pending"
        if not envelope.pending:
            await _file_work(len(message) < LARGE, self.spool.remove, "active", envelope.id)
            log.info("%s: removed", envelope.id)
            return
        waiting_only = all(r.detail == WAITING_FOR_SCHEDULE for r in envelope.pending)
        if waiting_only and wait_until is not None:
            next_try = wait_until
        else:
            envelope.attempts += 1
            next_try = now + self._backoff(envelope.attempts, settings)
            if wait_until is not None:
                next_try = min(next_try, wait_until)
        envelope.last_error = next((r.detail for r in envelope.pending if r.detail), "")
        await self._defer(envelope, next_try)

    async def _defer(self, envelope: Envelope, next_try: float):
        envelope.next_try = next_try
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.spool.rewrite, envelope, "active", "deferred")
        except OSError as error:
            self._unsaved[envelope.id] = ("active", envelope)
            log.error("%s: cannot write the queue file (%s); deferred with its envelope in "
                      "memory, written once the disk %s", envelope.id, error,
                      "has space again" if out_of_space(error) else "allows")
            try:
                await loop.run_in_executor(None, self.spool.move, envelope.id, "active", "deferred")
                self._unsaved[envelope.id] = ("deferred", envelope)
            except OSError as move_error:
                log.error("%s: cannot move it to deferred either (%s); it waits in active",
                          envelope.id, move_error)
        heapq.heappush(self._deferred, (next_try, envelope.id))
        self._wake.set()

    async def _save_unsaved(self):
        """Write the envelopes a full disk kept in memory, once it can."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SAVE_RETRY_SECONDS)
            for qid in list(self._unsaved):
                if qid in self._busy or qid not in self._unsaved:
                    continue
                async with self._exclusive(qid):
                    where, envelope = self._unsaved[qid]
                    try:
                        await loop.run_in_executor(None, self.spool.rewrite, envelope, where,
                                                   "deferred")
                    except NotInQueue:
                        del self._unsaved[qid]   # deleted or held meanwhile: the file rules
                        continue
                    except OSError as error:
                        if out_of_space(error):
                            break  # the others would fail the same way
                        continue
                    del self._unsaved[qid]
                    log.info("%s: queue file written (space available again)", qid)

    def _backoff(self, attempts: int, settings) -> float:
        low = settings["email.retry_minimum_seconds"]
        high = max(low, settings["email.retry_maximum_seconds"])
        return min(high, low * 2 ** max(attempts - 1, 0))

    async def _bounce(self, envelope: Envelope, failed, message: bytes, settings):
        dsn = bounce.bounce_submission(envelope, failed, message, settings)
        if dsn is None:
            log.warning("%s: undeliverable notification discarded (no one to tell)", envelope.id)
            return
        loop = asyncio.get_running_loop()

        def announce(qid):  # called on the worker thread that wrote the file
            loop.call_soon_threadsafe(self.notify, qid)
        dsn_id = await loop.run_in_executor(None, submit, self.spool, dsn, announce, settings)
        log.info("%s: sender non-delivery notification: %s", envelope.id, dsn_id)

    def _log_result(self, envelope: Envelope, recipient, relay: str, status: str, now: float):
        if self.stats is not None and status in ("sent", "bounced", "expired"):
            self.stats.count("delivered" if status == "sent" else "bounced")
        original = f", orig_to=<{recipient.original}>" if recipient.original else ""
        log.info("%s: to=<%s>%s, relay=%s, delay=%.2f, status=%s (%s)", envelope.id,
                 recipient.address, original, relay or "none", now - envelope.received, status,
                 recipient.detail)


async def _file_work(small: bool, function, *args):
    """A queue-file step that syncs nothing (a rename, an unlink, the read of
    a small file) runs on the loop itself, as Postfix's qmgr does them: the
    hand-off to a worker thread and back cost more than the step and nearly
    halved qmgr's CPU per message once gone (bench/README.md). A large file's
    read (and freeing its blocks) still goes to a thread."""
    if small:
        return function(*args)
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


class ByteBudget:
    """Octets of large messages in memory at once. One that is larger than
    the whole budget waits until nothing else holds any, then goes alone."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._waiting: list[asyncio.Future] = []

    async def acquire(self, octets: int):
        while self.used and self.used + octets > self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
        self.used += octets

    def release(self, octets: int):
        self.used -= octets
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)
