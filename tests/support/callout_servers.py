"""Servers for the SMTP callout tests: an aiosmtpd server with a user list
that keeps the transcript of every session, Postfix's smtp-sink told to
refuse chosen commands, and plain sockets that misbehave (silent, endless
replies)."""

from __future__ import annotations

import functools
import socket
import subprocess
import threading
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from .net import free_port, wait_for_banner, wait_until
from .sink import SMTP_SINK
from .tools import require

# Loopback addresses for a server on port 25, away from the 127.0.0.x ones
# other tests use; the first whose port 25 is free wins.
PORT_25_CANDIDATES = ("127.0.13.25", "127.0.14.25", "127.0.15.25", "127.0.16.25")


def free_port_25_address() -> str:
    for address in PORT_25_CANDIDATES:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address, 25))
            except OSError:
                continue
            return address
    raise RuntimeError(f"port 25 is taken on every one of {PORT_25_CANDIDATES}")


class UserListHandler:
    """Takes RCPT for its users (or for anyone, as a catch-all) and refuses
    the rest the way Postfix does for an unknown local user."""

    def __init__(self, users=(), catch_all: bool = False):
        self.users = {u.lower() for u in users}
        self.catch_all = catch_all

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.catch_all or address.lower() in self.users:
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 Ok"
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in local recipient table"

    async def handle_DATA(self, server, session, envelope):
        return "554 5.3.0 this server takes no messages"


class _TranscribingSMTP(SMTP):
    """aiosmtpd's server, noting every command it is given (DATA included,
    which no handler hook sees before the message has arrived)."""

    def __init__(self, handler, transcript: list, **kwargs):
        super().__init__(handler, **kwargs)
        for name, method in list(self._smtp_methods.items()):
            self._smtp_methods[name] = self._noting(name, method, transcript)

    @staticmethod
    def _noting(name, method, transcript):
        @functools.wraps(method)
        async def noted(arg):
            transcript.append(f"{name} {arg}".strip() if arg else name)
            return await method(arg)
        return noted


class _TranscribingController(Controller):
    def __init__(self, handler, **kwargs):
        super().__init__(handler, **kwargs)
        self.sessions: list[list[str]] = []
        self.lock = threading.Lock()

    def factory(self):
        transcript: list[str] = []
        with self.lock:
            self.sessions.append(transcript)
        return _TranscribingSMTP(self.handler, transcript, **self.SMTP_kwargs)


class UserListServer:
    """A LAN server or sender MX: a real aiosmtpd server with a user list."""

    def __init__(self, users=(), *, catch_all: bool = False, host: str = "127.0.0.1",
                 port: int | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.controller = _TranscribingController(UserListHandler(users, catch_all),
                                                  hostname=host, port=self.port)

    @property
    def target(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"

    def sessions(self) -> list[list[str]]:
        """The transcripts of the sessions so far; one that is still open
        may grow."""
        with self.controller.lock:
            # The controller's own readiness probe connects and says nothing.
            return [list(s) for s in self.controller.sessions if s]

    def finished_sessions(self, count: int, timeout: float = 10.0) -> list[list[str]]:
        """Once `count` sessions have ended with QUIT: the client's close
        races the server thread's bookkeeping."""
        def done():
            ended = [s for s in self.sessions() if s[-1] == "QUIT"]
            return ended if len(ended) >= count else None
        return wait_until(done, timeout, what=f"{count} sessions ending with QUIT")

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()


class RefusingSink:
    """Postfix's smtp-sink, refusing the commands named: `hard` with a 5xx
    reply, `soft` with a 4xx one (CONNECT is the greeting)."""

    def __init__(self, directory: Path, *, hard=(), soft=(), hard_reply: str = "",
                 soft_reply: str = "", host: str = "127.0.0.1", port: int | None = None):
        self.directory = Path(directory)
        self.host = host
        self.port = port or free_port(host)
        self.options = []
        if hard:
            self.options += ["-f", ",".join(hard)]
        if soft:
            self.options += ["-r", ",".join(soft)]
        if hard_reply:
            self.options += ["-B", hard_reply]
        if soft_reply:
            self.options += ["-b", soft_reply]
        self.process: subprocess.Popen | None = None

    @property
    def target(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self):
        require("smtp-sink")
        self.directory.mkdir(parents=True, exist_ok=True)
        # -u root: smtp-sink wants a user to switch to when started as root.
        command = [SMTP_SINK, "-u", "root", "-d", str(self.directory) + "/%Y%m%d%H%M%S.",
                   *self.options, f"{self.host}:{self.port}", "64"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_banner(self.host, self.port, accept=(b"2", b"4", b"5"))
        return self

    def messages(self) -> list[Path]:
        return [p for p in self.directory.iterdir() if p.stat().st_size > 0]

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class MisbehavingServer:
    """A plain TCP server that accepts connections and then either says
    nothing at all ("silent"), sends one greeting line that never ends
    ("endless-line"), or greeting continuation lines that never end
    ("endless-continuation"), for as long as the client reads."""

    MODES = ("silent", "endless-line", "endless-continuation")

    def __init__(self, mode: str, host: str = "127.0.0.1"):
        assert mode in self.MODES, mode
        self.mode = mode
        self.host = host
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.accepted = 0
        self.bytes_sent = 0
        self.closed_by_client = 0
        self.received = b""
        self.threads: list[threading.Thread] = []

    @property
    def target(self) -> tuple[str, int]:
        return (self.host, self.port)

    def start(self):
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        acceptor = threading.Thread(target=self._accept, name=f"misbehaving-{self.mode}", daemon=True)
        acceptor.start()
        self.threads.append(acceptor)
        return self

    def _accept(self):
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            worker = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            worker.start()
            self.threads.append(worker)

    def _payload(self, first: bool) -> bytes:
        if self.mode == "endless-line":
            return (b"220 " if first else b"") + b"x" * 4096
        return (b"220-" + b"y" * 70 + b"\r\n") * 50

    def _serve(self, connection: socket.socket):
        connection.settimeout(0.2)
        first = True
        with connection:
            while not self.stopping.is_set():
                try:
                    if self.mode == "silent":
                        data = connection.recv(4096)
                        if data == b"":
                            break
                        with self.lock:
                            self.received = (self.received + data)[:4096]
                        continue
                    sent = connection.send(self._payload(first))
                    first = False
                    with self.lock:
                        self.bytes_sent += sent
                except (TimeoutError, socket.timeout):
                    continue
                except OSError:
                    break
            with self.lock:
                self.closed_by_client += not self.stopping.is_set()

    def wait_for_client_close(self, count: int = 1, timeout: float = 10.0):
        """Until `count` clients have hung up; then the counters are final."""
        def closed():
            with self.lock:
                return self.closed_by_client >= count
        wait_until(closed, timeout, what=f"{count} clients to close their connection")

    def stop(self):
        self.stopping.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(5)
