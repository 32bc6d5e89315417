"""`gatebox run`: start the web admin, then run the smtpd process (which
starts the queue manager) until SIGTERM. The caller has brought the database
up to date first (Store.upgrade), as `gatebox run` does, or says it could not
(upgraded=False: each start of the mail stack tries again).

The web admin is the only way an office can repair its box, so nothing the
mail stack does takes it down: a mail stack that fails to start is logged,
recorded for the dashboard (firmware.system.service_state) and tried again
with a growing pause, while the web admin keeps serving."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from firmware.config import Store
from firmware.system import service_state

from . import smtpd, web_admin
from .process import configure_logging, on_stop_signals, return_large_buffers

log = logging.getLogger("gatebox")

FIRST_RETRY_SECONDS = 2
LONGEST_RETRY_SECONDS = 60


def run(data_dir, *, bind: str, smtp_port: int, submission_port: int, http_port: int = 0,
        dev_http: bool = False, pop3_port: int | None = None, imap_port: int | None = None,
        imaps_port: int | None = None, clamd: str = "child", upgraded: bool = True,
        smtpd_processes: int = 1):
    data_dir = Path(data_dir)
    configure_logging()
    return_large_buffers()
    web = web_admin.start(data_dir, bind, http_port, dev_http) if http_port else None
    try:
        asyncio.run(keep_mail_stack_up(data_dir, upgraded=upgraded, bind=bind, smtp_port=smtp_port,
                                       submission_port=submission_port,
                                       processes=smtpd_processes,
                                       service_options={"pop3_port": pop3_port,
                                                        "imap_port": imap_port,
                                                        "imaps_port": imaps_port,
                                                        "clamd": clamd}))
    finally:
        if web is not None:
            web_admin.stop(web)


async def keep_mail_stack_up(data_dir: Path, *, stop: asyncio.Event | None = None, ready=None,
                             upgraded: bool = True, **options) -> None:
    """Run smtpd until STOP; when it fails, say so and start it again. When
    the caller's database upgrade failed, each attempt tries it first."""
    stop = stop or asyncio.Event()
    on_stop_signals(asyncio.get_running_loop(), stop)
    attempts = 0
    service_state.record(data_dir, service_state.MAIL, service_state.STARTING)

    def started(ports):
        service_state.record(data_dir, service_state.MAIL, service_state.RUNNING,
                             listening={"bind": options.get("bind", ""), "smtp": ports[0]})
        if ready is not None:
            ready(ports)

    while not stop.is_set():
        try:
            if not upgraded:
                Store.upgrade(data_dir).close()
                upgraded = True
            await smtpd.serve(data_dir, ready=started, stop=stop, **options)
        except Exception as error:  # noqa: BLE001 (whatever it is, the web admin stays)
            attempts += 1
            pause = min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), LONGEST_RETRY_SECONDS)
            message = f"{error.__class__.__name__}: {error}"
            log.exception("mail services failed to run (attempt %d); trying again in %ds",
                          attempts, pause)
            service_state.record(data_dir, service_state.MAIL, service_state.FAILED, message,
                                 attempts)
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except asyncio.TimeoutError:
                pass
            continue
        break
    service_state.record(data_dir, service_state.MAIL, service_state.STOPPED)
