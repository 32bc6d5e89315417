"""The WSGI entry gunicorn loads (`webui.wsgi:app`). `gatebox run` passes
the data directory and whether this is plain-HTTP development in the
environment, because gunicorn runs it in its own process."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from firmware.mail.queue import Spool
from firmware.mail.queue_index import QueueIndex
from firmware.run.process import return_large_buffers
from firmware.run.web_admin import DATA_ENV, DEV_HTTP_ENV

from . import create_app


def _warm_queue_index(data_dir: Path):
    """Read a large queue into the index now, so the first visit to Messages
    in Queue does not wait for it (100,000 messages take seconds)."""
    index = QueueIndex(Spool(data_dir / "queue"))
    try:
        index.sync()
    finally:
        index.close()


# Every sign-in and password change runs scrypt with 16 MiB, on one of the
# worker's threads: without this, glibc serves the next ones from its heaps
# and keeps them, some 16 MiB per thread arena, for good (the web admin was
# the largest process of the 256 MB box, and the one the kernel killed).
return_large_buffers()
app = create_app(os.environ[DATA_ENV], secure_cookies=os.environ.get(DEV_HTTP_ENV) != "1")
threading.Thread(target=_warm_queue_index, args=(Path(os.environ[DATA_ENV]),), daemon=True,
                 name="warm-queue-index").start()
