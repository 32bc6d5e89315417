"""`gatebox run`: the box's mail services in one process: smtpd on the SMTP
and submission ports, the queue manager, and the settings watcher. Stops
cleanly on SIGTERM/SIGINT; what was being delivered stays in the queue."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import sys
from pathlib import Path

from firmware.config import Store
from firmware.config.watch import Watcher
from firmware.system import tls

from .mail.checks import CORE_CHECKS
from .mail.deliver import SmtpDelivery
from .mail.policy import Policy
from .mail.qmgr import QueueManager
from .mail.queue import Spool
from .mail.smtpd import Gateway
from .mail.stats import MailStats

log = logging.getLogger("gatebox")


def configure_logging():
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%b %d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # aiosmtpd logs every command at INFO; the box logs its own summary lines.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


async def serve(data_dir: Path, *, bind: str, smtp_port: int, submission_port: int,
                ready=None, stop: asyncio.Event | None = None):
    loop = asyncio.get_running_loop()
    # fsyncs and SMTP deliveries run in threads; the default pool is too small.
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=64))
    store = Store(data_dir)
    watcher = Watcher(store)
    spool = Spool(data_dir / "queue")
    spool.create()
    report = spool.recover()
    if any(report.values()):
        log.info("queue recovery: %s", report)
    settings = watcher.current
    tls.ensure_certificate(data_dir, settings["system.hostname"])
    delivery = SmtpDelivery(helo_name=settings["system.hostname"])
    stats = MailStats(store)
    qmgr = QueueManager(spool, watcher, {"lan": delivery, "smarthost": delivery, "mx": delivery},
                        stats=stats)
    gateway = Gateway(watcher=watcher, spool=spool, policy=Policy(CORE_CHECKS),
                      tls_context=tls.server_context(data_dir), on_enqueued=qmgr.notify,
                      stats=stats)
    servers = [await gateway.serve(bind, smtp_port, "smtp")]
    if submission_port:
        servers.append(await gateway.serve(bind, submission_port, "submission"))
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    log.info("gatebox listening on %s: smtp %s%s", bind, ports[0],
             f", submission {ports[1]}" if len(ports) > 1 else "")
    stop = stop or asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    tasks = [loop.create_task(qmgr.run()), loop.create_task(watcher.watch()),
             loop.create_task(_close_idle_connections(delivery)), loop.create_task(stats.run())]
    if ready is not None:
        ready(ports)
    await stop.wait()
    log.info("stopping")
    for server in servers:
        server.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for server in servers:
        await server.wait_closed()
    await loop.run_in_executor(None, delivery.close_idle)
    store.close()
    log.info("stopped")


async def _close_idle_connections(delivery: SmtpDelivery):
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(10)
        await loop.run_in_executor(None, delivery.close_idle, 20.0)


def run(data_dir, *, bind: str, smtp_port: int, submission_port: int):
    configure_logging()
    asyncio.run(serve(Path(data_dir), bind=bind, smtp_port=smtp_port,
                      submission_port=submission_port))
