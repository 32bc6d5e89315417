"""The smtpd process: the SMTP and submission ports, the settings watcher,
the SoftPaks' services, and the queue manager child it supervises."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from firmware.config import Store
from firmware.config.watch import Watcher
from firmware.mail import quarantine, smtpd_shared
from firmware.mail.queue import Spool
from firmware.mail.verify import cache as verify_cache, ldap_sync
from firmware.system import tls

from .process import on_stop_signals, stop_tasks, use_many_threads
from .qmgr import QmgrChild
from .smtpd_workers import SmtpdWorkers, build_gateway
from .softpak_services import SoftPakServices

log = logging.getLogger("gatebox")


async def serve(data_dir: Path, *, bind: str, smtp_port: int, submission_port: int,
                ready=None, stop: asyncio.Event | None = None, service_options: dict | None = None,
                processes: int = 1):
    loop = asyncio.get_running_loop()
    use_many_threads(loop, 32)
    store = Store(data_dir)
    watcher = Watcher(store)
    spool = Spool(data_dir / "queue")
    spool.create()
    if any(quarantine.Quarantine(data_dir).recover().values()):
        log.info("quarantine recovery: partial files dropped")
    report = spool.drop_unfinished()
    if any(report.values()):
        log.info("queue recovery: %s", report)
    tls.ensure_certificate(data_dir, watcher.current["system.hostname"])
    qmgr = QmgrChild(data_dir)
    await qmgr.start()
    # A start that fails half-way (a port taken, a SoftPak's service) leaves
    # nothing running behind it: `gatebox run` tries again later.
    softpak_services, servers, workers = None, [], None
    shared_fd = region = None
    if processes > 1:
        shared_fd = smtpd_shared.create(processes)
        region = smtpd_shared.SharedRegion(shared_fd, processes, 0)

    def release_shared():
        if region is not None:
            region.close()
            os.close(shared_fd)
    try:
        spool.start_committer()
        gateway, stats = build_gateway(data_dir, store, watcher, spool, qmgr.notify, region)
        softpak_services = SoftPakServices(store, {"bind": bind, "data_dir": data_dir,
                                                   **(service_options or {})})
        await softpak_services.reconcile()
        watcher.on_change(lambda _settings: softpak_services.reconcile_soon())
        servers.append(await gateway.serve(bind, smtp_port, "smtp"))
        if submission_port:
            servers.append(await gateway.serve(bind, submission_port, "submission"))
        if processes > 1:
            workers = SmtpdWorkers(data_dir, processes=processes, shared_fd=shared_fd,
                                   notify_fd=qmgr.notify_fd,
                                   listening=[(sock, kind) for server, kind
                                              in zip(servers, ("smtp", "submission"))
                                              for sock in server.sockets])
            await workers.start()
    except BaseException:
        for server in servers:
            server.close()
        if workers is not None:
            await workers.stop()
        if softpak_services is not None:
            await softpak_services.stop_all()
        await qmgr.stop()
        spool.close()
        store.close()
        release_shared()
        raise
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    log.info("gatebox listening on %s: smtp %s%s (%d smtpd process%s)", bind, ports[0],
             f", submission {ports[1]}" if len(ports) > 1 else "", processes,
             "es" if processes > 1 else "")
    stop = stop or asyncio.Event()
    on_stop_signals(loop, stop)
    tasks = [loop.create_task(watcher.watch()), loop.create_task(stats.run()),
             loop.create_task(qmgr.supervise()),
             loop.create_task(ldap_sync.keep_synced(store, lambda: watcher.current, stop)),
             loop.create_task(verify_cache.keep_pruned(store, stop)),
             loop.create_task(quarantine.keep_expired(data_dir, lambda: watcher.current, stop))]
    if workers is not None:
        tasks.append(loop.create_task(workers.supervise()))
    if ready is not None:
        ready(ports)
    await stop.wait()
    log.info("stopping")
    for server in servers:
        server.close()
    await stop_tasks(tasks)
    if workers is not None:
        await workers.stop()
    await softpak_services.stop_all()
    await qmgr.stop()
    spool.close()
    store.close()
    release_shared()
    log.info("stopped")
