"""The SoftPaks' long-running services (e.g. Dovecot for the Mail Server
SoftPak), kept in line with the licenses and settings of the moment."""

from __future__ import annotations

import asyncio
import logging

from firmware.mail import extensions

log = logging.getLogger("gatebox")


class SoftPakServices:
    """Each service's name says what it runs and how, so after a license or
    settings change the set wanted now is compared by name: services no
    longer wanted are stopped first (freeing their ports for a stand-in),
    then new ones are started."""

    def __init__(self, store, options: dict):
        self.store = store
        self.options = options
        self.running: dict = {}
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task | None = None

    async def reconcile(self):
        async with self._lock:
            try:
                wanted = extensions.services(self.store, self.options)
            except Exception:
                log.exception("could not work out which SoftPak services to run")
                return
            for name in [n for n in self.running if n not in wanted]:
                await self._stop(name)
            for name, service in wanted.items():
                if name not in self.running:
                    try:
                        await service.start()
                    except Exception as error:
                        # One SoftPak service failing must not take the mail stack down.
                        log.error("service %s did not start: %s", name, error)
                        continue
                    self.running[name] = service
                    log.info("service %s started", name)

    def reconcile_soon(self):
        if self._pending is None or self._pending.done():
            self._pending = asyncio.get_running_loop().create_task(self.reconcile())
        else:
            # A change arrived while one is being applied: apply again after it.
            previous = self._pending

            async def after():
                await asyncio.gather(previous, return_exceptions=True)
                await self.reconcile()
            self._pending = asyncio.get_running_loop().create_task(after())

    async def _stop(self, name: str):
        service = self.running.pop(name)
        try:
            await service.stop()
            log.info("service %s stopped", name)
        except Exception:
            log.exception("service %s did not stop cleanly", name)

    async def stop_all(self):
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
        async with self._lock:
            for name in list(self.running):
                await self._stop(name)
