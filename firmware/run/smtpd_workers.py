"""The other smtpd processes: more event loops on the same listening sockets.

One event loop takes a message in at about one core's worth of Python, so
smtpd runs one process per core it may use (`gatebox run --smtpd-processes`),
as Postfix runs many smtpd processes. Each inherits the
listening sockets and accepts on them itself; the kernel hands each new
connection to one of them. What must be the same in all of them, the
connection caps and the duplicate filter, lives in memory they share
(firmware.mail.smtpd_shared). Everything else that smtpd does once (the
queue manager, the SoftPaks' services, the directory sync, the pruning) stays
with the first process, which serves connections too.

A worker dies with the first process and is restarted, in its own part of
the shared memory, when it fails alone. Messages it had acknowledged are on
disk; sessions it had open are cut, and their clients send again."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

from firmware.config import Store
from firmware.config.watch import Watcher
from firmware.mail import extensions, notify
from firmware.mail.queue import Spool
from firmware.mail.smtpd import Gateway
from firmware.mail.smtpd_shared import SharedConnections, SharedDuplicates, SharedRegion
from firmware.mail.stats import MailStats
from firmware.system import tls

from .process import (configure_logging, die_with_parent, on_stop_signals, return_large_buffers,
                      stop_child, stop_tasks, use_many_threads)

log = logging.getLogger("gatebox")

RESTART_SECONDS = 1.0


# Each smtpd process beyond the first costs about 35 MB of its own memory
# (the mail stack's modules, imported again). A box of 256 MB needs that for
# Dovecot and its logins, so it keeps one; a bigger one gets one per core.
MEMORY_FOR_SEVERAL = 448 * 1024 * 1024


def default_processes(meminfo: str = "/proc/meminfo") -> int:
    """One per core this process may run on, at most four (past that the
    queue manager and the disk are the limit), when the machine has the
    memory for them; one otherwise."""
    with open(meminfo) as handle:
        total = next(int(line.split()[1]) * 1024 for line in handle
                     if line.startswith("MemTotal:"))
    if total < MEMORY_FOR_SEVERAL:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0))))


def build_gateway(data_dir: Path, store: Store, watcher: Watcher, spool: Spool, on_enqueued,
                  region: SharedRegion | None) -> tuple[Gateway, MailStats]:
    """The Gateway of one smtpd process, and the statistics it counts in."""
    stats = MailStats(store)
    shared = {} if region is None else {"connections": SharedConnections(region),
                                        "duplicates": SharedDuplicates(region)}
    gateway = Gateway(watcher=watcher, spool=spool, policy=extensions.policy(store),
                      tls_context=tls.server_context(data_dir), on_enqueued=on_enqueued,
                      stats=stats, **shared)
    watcher.on_change(lambda _settings: setattr(gateway, "policy", extensions.policy(store)))
    return gateway, stats


class SmtpdWorkers:
    """The first smtpd process's side: starts the others and keeps them up."""

    def __init__(self, data_dir: Path, *, processes: int, shared_fd: int, notify_fd: int,
                 listening: list[tuple[socket.socket, str]]):
        self.data_dir = data_dir
        self.processes = processes
        self.shared_fd, self.notify_fd = shared_fd, notify_fd
        self.listening = listening
        self.children: dict[int, asyncio.subprocess.Process] = {}

    async def start(self):
        for part in range(1, self.processes):
            await self._start(part)

    async def _start(self, part: int):
        fds = [sock.fileno() for sock, _kind in self.listening]
        self.children[part] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "firmware.cli", "--data", str(self.data_dir), "smtpd-worker",
            "--part", str(part), "--processes", str(self.processes),
            "--shared-fd", str(self.shared_fd), "--notify-fd", str(self.notify_fd),
            *(f"--listen={sock.fileno()}:{kind}" for sock, kind in self.listening),
            pass_fds=(*fds, self.shared_fd, self.notify_fd), preexec_fn=die_with_parent)

    async def supervise(self):
        async def keep_up(part: int):
            while True:
                code = await self.children[part].wait()
                log.error("smtpd process %s exited with status %s; restarting", part, code)
                await asyncio.sleep(RESTART_SECONDS)
                await self._start(part)
        await asyncio.gather(*(keep_up(part) for part in list(self.children)))

    async def stop(self):
        await asyncio.gather(*(stop_child(child, 15) for child in self.children.values()))


async def serve_worker(data_dir: Path, *, part: int, processes: int, shared_fd: int,
                       notify_fd: int, listening: list[tuple[int, str]],
                       stop: asyncio.Event | None = None):
    loop = asyncio.get_running_loop()
    use_many_threads(loop, 32)
    store = Store(data_dir)
    watcher = Watcher(store)
    spool = Spool(data_dir / "queue")
    spool.start_committer()
    pipe = notify.NotifyWriter()
    pipe.attach(notify_fd)
    region = SharedRegion(shared_fd, processes, part)
    gateway, stats = build_gateway(data_dir, store, watcher, spool, pipe.notify, region)
    servers = [await gateway.serve_socket(socket.socket(fileno=fd), kind)
               for fd, kind in listening]
    stop = stop or asyncio.Event()
    on_stop_signals(loop, stop)
    tasks = [loop.create_task(watcher.watch()), loop.create_task(stats.run())]
    await stop.wait()
    for server in servers:
        server.close()
    await stop_tasks(tasks)
    spool.close()
    pipe.close()
    store.close()


def run_worker(data_dir, **options):
    configure_logging()
    return_large_buffers()
    asyncio.run(serve_worker(Path(data_dir), **options))
