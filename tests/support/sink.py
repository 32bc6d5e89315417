"""Final destinations: Postfix's smtp-sink (a real MTA test server), and a
recording aiosmtpd server for what smtp-sink cannot do (AUTH, chosen
rejections, reading the envelope back)."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from .net import free_port, wait_for_banner, wait_until
from .tools import require

SETTLE_SECONDS = 0.5
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


class SmtpSink:
    """smtp-sink dumping every message to its own file."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.process = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self):
        require("smtp-sink")
        command = [SMTP_SINK, "-d", str(self.directory) + "/%Y%m%d%H%M%S.", f"{self.host}:{self.port}", "256"]
        if os.geteuid() == 0:
            # smtp-sink insists on a user to switch to when run as root; the
            # test's own directories are private, so stay root.
            command[1:1] = ["-u", "root"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_banner(self.host, self.port)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def files(self) -> list[Path]:
        """Dump files smtp-sink has finished: it writes them while the data
        arrives and marks no end, so a file counts once it has been quiet
        for a moment."""
        settled = time.time() - SETTLE_SECONDS
        result = []
        for path in self.directory.iterdir():
            stat = path.stat()
            if stat.st_size > 0 and stat.st_mtime < settled:
                result.append(path)
        return sorted(result)

    def messages(self) -> list[bytes]:
        return [p.read_bytes() for p in self.files()]

    def count(self) -> int:
        return len(self.files())

    def final_count(self, timeout: float = 10.0) -> int:
        """The number of messages once every dump file has settled. Call it
        once the senders have had every reply (the box is idle): then no
        file is still growing and the count is final."""
        def all_settled():
            written = [p for p in self.directory.iterdir() if p.stat().st_size > 0]
            return len(self.files()) == len(written)
        wait_until(all_settled, timeout, what="smtp-sink's files to settle")
        return self.count()


@dataclass
class Received:
    sender: str
    recipients: list
    content: bytes
    auth_login: str = ""
    tls: bool = False

    @property
    def message(self) -> email.message.Message:
        return email.message_from_bytes(self.content)


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps what it receives."""
    reject: dict = field(default_factory=dict)   # recipient -> reply
    received: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data.login.decode() if session.authenticated and session.auth_data else ""
        with self.lock:
            sender = "" if envelope.mail_from == "<>" else envelope.mail_from
            self.received.append(Received(sender, list(envelope.rcpt_tos),
                                          envelope.original_content, login, session.ssl is not None))
        return "250 2.0.0 OK recorded"

    def for_recipient(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.recipients]


class RecordingServer:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, tls_context=None,
                 credentials: tuple[str, str] | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.recorder = Recorder()
        self.credentials = credentials
        kwargs = {}
        if credentials:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=tls_context is not None)
        if tls_context is not None:
            kwargs["tls_context"] = tls_context
        self.controller = Controller(self.recorder, hostname=host, port=self.port, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def received(self) -> list[Received]:
        return self.recorder.received

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()
