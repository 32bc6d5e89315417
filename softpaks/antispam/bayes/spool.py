"""The service that learns what Dovecot's IMAPSieve spooled (see sieve.py):
every POLL_SECONDS it takes up to BATCH files of each spool, learns each in
a thread off the event loop and removes it. A file that cannot be learnt
(empty, unreadable, hostile) is removed too and logged, never retried
forever; a dot-file older than STALE_SECONDS is a spooling that died half
way and goes as well."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from .learn import MAX_MESSAGE, learn_message
from .settings import MAX_TOKENS
from .sieve import KINDS, spool_dir

POLL_SECONDS = 1.0
BATCH = 50
STALE_SECONDS = 3600

log = logging.getLogger("gatebox.antispam")


def _waiting(directory: Path) -> list[Path]:
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    now = time.time()
    ready = []
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            continue
        if entry.name.startswith("."):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS:
                    os.unlink(entry.path)
            except OSError:
                pass
            continue
        ready.append(Path(entry.path))
    return sorted(ready)[:BATCH]


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(MAX_MESSAGE)


def learn_spooled(data_dir, max_tokens: int) -> int:
    """One round over both spools; returns the messages learnt."""
    learnt = 0
    for kind in KINDS:
        for path in _waiting(spool_dir(data_dir, kind)):
            try:
                said = learn_message(data_dir, _read(path), kind == "spam", "imap", max_tokens)
                learnt += 1
                log.info("bayes: a message moved by a mail user %s", said)
            except (OSError, ValueError) as error:
                log.warning("warning: bayes: spooled %s not learnt: %s", path.name, error)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return learnt


class SpoolLearner:
    def __init__(self, store, data_dir):
        self.store = store
        self.data_dir = Path(data_dir)
        self.name = "bayes-spool"
        self._task: asyncio.Task | None = None

    async def start(self):
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            try:
                max_tokens = self.store.get(MAX_TOKENS)
                await loop.run_in_executor(None, learn_spooled, self.data_dir, max_tokens)
            except Exception as error:   # the service keeps going; the next round retries
                log.warning("warning: bayes: spool round failed: %s: %s", type(error).__name__, error)
            await asyncio.sleep(POLL_SECONDS)

    async def stop(self):
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


def services(store, options) -> list:
    return [SpoolLearner(store, options["data_dir"])]
