"""An in-process smtpd: the real Gateway (aiosmtpd, the policy chain, the
scoring pass, submit and the spool) on a loopback port, served by an event
loop in a thread of the test. Tests talk to it with smtplib, read the queue
files and the log lines it wrote, and can put their own checks in its chain.
Nothing is stubbed; only the qmgr process is left out, so what was accepted
stays in the queue for the test to read."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from firmware.config import Store
from firmware.config.watch import Watcher
from firmware.mail import stats as mail_stats
from firmware.mail.checks import CORE_CHECKS
from firmware.mail.policy import Policy
from firmware.mail.quarantine import Quarantine
from firmware.mail.queue import Spool
from firmware.mail.resolver import Resolver
from firmware.mail.smtpd import Gateway
from firmware.mail.stats import MailStats

HOST = "127.0.0.1"


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record):
        with self._lock:
            self.lines.append(f"{record.name}: {record.getMessage()}")

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)


class InProcessGateway:
    def __init__(self, data_dir: Path, checks=(), settings: dict | None = None,
                 core_checks=CORE_CHECKS):
        self.data_dir = Path(data_dir)
        store = Store.create(self.data_dir)
        store.set_many({"email.domain": "example.com", "email.trusted_networks": "127.0.0.1/32",
                        **(settings or {})}, actor="test")
        store.close()
        self.spool = Spool(self.data_dir / "queue")
        self.spool.create()
        self.policy = Policy(list(core_checks) + list(checks))
        self.resolver = Resolver()
        self.host, self.port = HOST, 0
        self._log = _Lines()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    # ---- running -------------------------------------------------------------------
    def start(self) -> "InProcessGateway":
        logging.getLogger("gatebox").addHandler(self._log)
        logging.getLogger("gatebox").setLevel(logging.INFO)
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True,
                                        name="in-process-smtpd")
        self._thread.start()
        if not started.wait(20):
            raise AssertionError("the in-process smtpd did not start")
        return self

    def _run(self, started: threading.Event):
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._open())
        started.set()
        self._loop.run_forever()

    async def _open(self):
        # The store's SQLite connection belongs to the loop's thread.
        self.store = Store(self.data_dir)
        self.watcher = Watcher(self.store)
        self.stats = MailStats(self.store)
        self.gateway = Gateway(watcher=self.watcher, spool=self.spool, policy=self.policy,
                               tls_context=None, stats=self.stats, dns=self.resolver)
        self.server = await self.gateway.serve(HOST, 0, "smtp")
        self.submission = await self.gateway.serve(HOST, 0, "submission")
        self.port = self.server.sockets[0].getsockname()[1]
        self.submission_port = self.submission.sockets[0].getsockname()[1]

    def call(self, function, *args):
        """Run function(*args) on the server's loop thread and return its result."""
        async def run():
            return function(*args)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(20)

    def stop(self):
        if self._thread is None:
            return

        async def close():
            for server in (self.server, self.submission):
                server.close()
                await server.wait_closed()
            self.stats.flush()
            self.store.close()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(20)
        self._loop.close()
        self.resolver.close()
        logging.getLogger("gatebox").removeHandler(self._log)
        self._thread = None

    # ---- looking at it -------------------------------------------------------------
    def configure(self, **settings):
        """Change settings as the CLI would; the gateway sees them at once."""
        def apply():
            self.store.set_many(settings, actor="test")
            self.watcher.refresh()
        self.call(apply)

    def log(self) -> str:
        return self._log.text()

    def check_counts(self) -> dict:
        def read():
            self.stats.flush()
            return mail_stats.check_counts(self.store)
        return self.call(read)

    def quarantined(self) -> list[tuple]:
        """[(quarantine Item, message bytes)] of what the quarantine holds."""
        store = Quarantine(self.data_dir)
        return [store.load(item.id) for item in store.items()]

    def queued(self, state: str = "incoming") -> list[tuple]:
        """[(envelope, message bytes)] of the messages in a queue state."""
        return [self.spool.load(state, qid) for qid in self.spool.ids(state)]
