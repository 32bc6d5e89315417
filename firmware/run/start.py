"""`gatebox run`: start the web admin, then run the smtpd process (which
starts the queue manager) until SIGTERM. The caller has brought the database
up to date first (Store.upgrade), as `gatebox run` does."""

from __future__ import annotations

import asyncio
from pathlib import Path

from . import smtpd, web_admin
from .process import configure_logging


def run(data_dir, *, bind: str, smtp_port: int, submission_port: int, http_port: int = 0,
        dev_http: bool = False, pop3_port: int | None = None, imap_port: int | None = None,
        imaps_port: int | None = None):
    data_dir = Path(data_dir)
    configure_logging()
    web = web_admin.start(data_dir, bind, http_port, dev_http) if http_port else None
    try:
        asyncio.run(smtpd.serve(data_dir, bind=bind, smtp_port=smtp_port,
                                submission_port=submission_port,
                                service_options={"pop3_port": pop3_port, "imap_port": imap_port,
                                                 "imaps_port": imaps_port}))
    finally:
        if web is not None:
            web_admin.stop(web)
