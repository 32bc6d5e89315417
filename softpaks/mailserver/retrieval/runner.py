"""The retrieval service of `gatebox run`: at each tick of the Scheduling
page's intervals, and whenever Retrieve now was pressed, one retrieval
session runs (session.py), on a thread of its own so that a slow ISP never
holds up the mail stack. At its start it settles what a death left staged
(fetch.settle_left_over). The clock is injectable: tests move it to the
scheduled time instead of waiting for it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from firmware.config import Store
from firmware.mail import schedule
from firmware.mail.queue import Spool
from firmware.mail.queue_ops import picked_up_by_rescan

from . import RetrievalContext, state
from .fetch import settle_left_over
from .session import retrieve

log = logging.getLogger("gatebox.retrieval")
POLL_SECONDS = 1.0


class RetrievalRunner:
    name = "retrieval runner"

    def __init__(self, data_dir, clock=time.time, poll: float = POLL_SECONDS):
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.poll = poll
        self.looks = 0            # how often the schedule was read: tests wait on it
        self.sessions = 0
        self.next_run: float | None = None   # what this runner last worked out
        self._after: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self):
        self._stop.clear()
        self._after = self.clock()
        self._thread = threading.Thread(target=self._main, name="retrieval", daemon=True)
        self._thread.start()

    async def stop(self):
        self._stop.set()
        if self._thread is not None:
            # A session under way finishes first: what it fetched is queued
            # and deleted at the ISP, or neither.
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._thread = None

    def _main(self):
        store = Store(self.data_dir)
        try:
            self.settle_left_over(store)
            while not self._stop.is_set():
                try:
                    self.look(store)
                except Exception:
                    log.exception("retrieval service")
                self._stop.wait(self.poll)
        finally:
            store.close()

    def settle_left_over(self, store):
        try:
            ctx = RetrievalContext(store=store, spool=Spool(self.data_dir / "queue"),
                                   announce=picked_up_by_rescan, settings=store.snapshot(),
                                   now=self.clock())
            settle_left_over(ctx)
        except Exception:
            log.exception("retrieval service: settling what an earlier run left staged")

    def look(self, store):
        """Run a session if one is due or was asked for; note the next run."""
        now = self.clock()
        settings = store.snapshot()
        due = schedule.next_retrieval_time(self._after, settings)
        requested = state.runner(store).requested
        if requested is not None or (due is not None and now >= due):
            why = "Retrieve now" if requested is not None else "schedule"
            log.info("retrieval (%s)", why)
            for result in retrieve(store, self.data_dir, now, answers=requested):
                log.info("retrieval: %s", result.summary)
            self.sessions += 1
            if due is not None and now >= due:
                self._after = max(now, due) + 1
                due = schedule.next_retrieval_time(self._after, settings)
        self.next_run = due
        if state.runner(store).next_run != due:
            state.set_next_run(store, due)
        self.looks += 1
