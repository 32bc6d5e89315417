"""The queue manager process (`gatebox qmgr`), and QmgrChild, with which the
smtpd process starts and supervises it.

Two processes, as Postfix splits smtpd from qmgr, so that taking mail in and
delivering it use both cores. The child dies with its parent (a crash of the
stack takes both down; nothing accepted is lost because the queue files are
the truth) and is restarted if it fails alone. smtpd tells it about new mail
over a pipe (firmware.mail.notify); the queue manager also rescans the
queue, so a lost note only delays delivery by a few seconds."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from firmware.background_work import run_as_background_work
from firmware.config import Store
from firmware.config.watch import Watcher
from firmware.mail import extensions, notify
from firmware.mail.deliver import SmtpDelivery
from firmware.mail.qmgr import QueueManager
from firmware.mail.queue import Spool
from firmware.mail.stats import MailStats
from firmware.plugins import DeliveryContext

from .process import (configure_logging, die_with_parent, on_stop_signals, return_large_buffers,
                      stop_child, stop_tasks, use_many_threads)

log = logging.getLogger("gatebox")

RESTART_SECONDS = 1.0


async def serve(data_dir: Path, notify_fd: int | None = None, stop: asyncio.Event | None = None):
    loop = asyncio.get_running_loop()
    use_many_threads(loop, 48)
    store = Store(data_dir)
    watcher = Watcher(store)
    spool = Spool(data_dir / "queue")
    report = await loop.run_in_executor(None, spool.requeue_active)
    if any(report.values()):
        log.info("queue recovery: %s", report)
    delivery = SmtpDelivery(helo_name=watcher.current["system.hostname"])
    stats = MailStats(store)
    routes = extensions.routes(store)
    core_agents = {"lan": delivery, "smarthost": delivery, "mx": delivery}
    announced: list = []  # filled below, once the queue manager exists
    context = DeliveryContext(
        data_dir, spool, lambda qid: loop.call_soon_threadsafe(announced[0], qid))
    qmgr = QueueManager(spool, watcher, {**core_agents, **extensions.delivery_agents(store, context)},
                        stats=stats, extra_routes=lambda: routes)
    announced.append(qmgr.notify)

    def licensing_changed(_settings):
        nonlocal routes
        routes = extensions.routes(store)
        # A lapsed SoftPak's agents go with its routes: its mail waits in the queue.
        qmgr.agents = {**core_agents, **extensions.delivery_agents(store, context)}
    watcher.on_change(licensing_changed)
    if notify_fd is not None:
        notify.listen(loop, notify_fd, qmgr.notify)
    stop = stop or asyncio.Event()
    on_stop_signals(loop, stop)
    tasks = [loop.create_task(qmgr.run()), loop.create_task(watcher.watch()),
             loop.create_task(_close_idle_connections(delivery)), loop.create_task(stats.run())]
    await stop.wait()
    await stop_tasks(tasks)
    await delivery.close_idle()
    store.close()


async def _close_idle_connections(delivery: SmtpDelivery):
    while True:
        await asyncio.sleep(10)
        await delivery.close_idle(20.0)


def run(data_dir, notify_fd: int | None):
    configure_logging()
    # Before any thread starts, so that the delivery threads inherit it.
    run_as_background_work()
    return_large_buffers()
    asyncio.run(serve(Path(data_dir), notify_fd))


class QmgrChild:
    """The queue manager child process and the pipe that tells it about new mail."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.process: asyncio.subprocess.Process | None = None
        # One pipe for the life of the smtpd process, its read end kept open
        # here: a restarted queue manager reads on where the last one
        # stopped, and the other smtpd processes' copies of the write end
        # stay good across its restarts.
        self._read_fd, write_fd = os.pipe()
        self.pipe = notify.NotifyWriter()
        self.pipe.attach(write_fd)

    @property
    def notify_fd(self) -> int:
        """The pipe's write end, for the other smtpd processes to inherit."""
        return self.pipe.fd

    async def start(self):
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "firmware.cli", "--data", str(self.data_dir), "qmgr",
            "--notify-fd", str(self._read_fd), pass_fds=(self._read_fd,),
            preexec_fn=die_with_parent)

    def notify(self, qid: str):
        self.pipe.notify(qid)

    async def supervise(self):
        while True:
            code = await self.process.wait()
            log.error("queue manager exited with status %s; restarting", code)
            await asyncio.sleep(RESTART_SECONDS)
            await self.start()

    async def stop(self):
        await stop_child(self.process, 15)
        self.pipe.close()
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None
