"""The statistics are written beside the mail, never in its way: a write
that waits (on the other process's write lock, on the disk) does not hold
the event loop that serves the sessions."""

import asyncio
import sqlite3
import time

from firmware.config import Store
from firmware.mail import stats as mail_stats
from firmware.mail.stats import MailStats


def test_a_flush_waiting_for_the_write_lock_leaves_the_event_loop_serving(tmp_path, monkeypatch):
    store = Store.create(tmp_path / "box")
    monkeypatch.setattr(mail_stats, "FLUSH_SECONDS", 0.05)
    # Another process (the queue manager's flush, `gatebox config set`) holds the write lock.
    other = sqlite3.connect(store.path, timeout=1, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    counter = MailStats(store)
    counter.count("received")
    counter.count_check("relay_access")
    longest = [0.0]

    async def main():
        task = asyncio.get_running_loop().create_task(counter.run())
        last = time.monotonic()
        # Two seconds of 10 ms ticks: each flush attempt is made and waits meanwhile.
        for _ in range(200):
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest[0] = max(longest[0], now - last)
            last = now
            # The loop's own reads of the store go on too.
            assert store.generation() >= 0
        other.execute("COMMIT")
        deadline = time.monotonic() + 40
        while mail_stats.check_counts(store) != {"relay_access": 1}:
            assert time.monotonic() < deadline, "the counts were never written"
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(main())
        assert longest[0] < 1.0, f"the loop was held for {longest[0]:.2f} s"
        assert [row["received"] for row in mail_stats.hourly(store, hours=1)] == [1]
    finally:
        other.close()
        store.close()


def test_counts_made_while_stopping_are_written_before_the_store_closes(tmp_path):
    store = Store.create(tmp_path / "box")
    counter = MailStats(store)

    async def main():
        task = asyncio.get_running_loop().create_task(counter.run())
        await asyncio.sleep(0)
        counter.count("delivered", 3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(main())
        assert [row["delivered"] for row in mail_stats.hourly(store, hours=1)] == [3]
    finally:
        store.close()
