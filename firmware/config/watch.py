"""Running services hold a Watcher: a current settings snapshot that is
replaced when the store's generation number moves. Each process logs the
generation it starts with and every one it moves to, with its pid: a
process started after a change was made reloads nothing, and whoever waits
for every process to hold a generation must still be able to tell."""

from __future__ import annotations

import asyncio
import logging
import os

from .store import Snapshot, Store

log = logging.getLogger("gatebox.config")


class Watcher:
    def __init__(self, store: Store, interval: float = 1.0):
        self.store = store
        self.interval = interval
        self.current: Snapshot = store.snapshot()
        self._listeners = []
        log.info("settings loaded (generation %d, pid %d)", self.current.generation, os.getpid())

    def on_change(self, callback):
        self._listeners.append(callback)

    def refresh(self) -> bool:
        if self.store.generation() == self.current.generation:
            return False
        self.current = self.store.snapshot()
        log.info("settings reloaded (generation %d, pid %d)", self.current.generation, os.getpid())
        for callback in self._listeners:
            callback(self.current)
        return True

    async def watch(self):
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.refresh()
            except Exception:
                log.exception("could not reload settings; keeping the previous ones")
