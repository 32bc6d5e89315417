"""The box's auth service for Dovecot: a Unix socket in a directory only the
box's user can enter, served in the smtpd process while Dovecot runs.

Each connection is one login, sent by the checkpassword client program
(checkpassword.client_text): "client ip\\0service\\0name\\0password\\0...",
then the client's end of the stream. The answer is the shell text
checkpassword.reply_script makes. At most CONCURRENT checks run at once, in
threads, and of those only one hashes a password at a time: the hash is slow
and takes 16 MiB on purpose (scrypt, firmware/accounts.py), the box has two
cores and 256 MB, so a storm of logins waits its turn instead of growing the
box. A login whose turn has
not come WAIT_SECONDS after it connected, nearly as long as its client
waits, is answered as a temporary failure without being checked. A request
that is too long, malformed or not sent within REQUEST_SECONDS is a
temporary failure.

Both budgets count from the connection and are generous: the client is a
local program that only Dovecot starts (the socket is the box user's
alone), and in a storm on a busy box the twenty sh, head and socat it
starts can take many seconds to send their hundred bytes. A storm in a
starved guest once had eight logins refused by a 10-second request budget.

Logins that are the same (name, password, client address, service) while
one of them is being checked share its answer instead of each taking a
turn: an office's mail clients open several connections per account at
once, each logging in. Once the check ends, only the password's
verification is remembered, for a while (firmware/verified_passwords.py), so
the next login skips the hash; a changed password, a lockout or a lost
permission still counts from the next login on."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import stat
import tempfile
from pathlib import Path

from . import checkpassword

log = logging.getLogger("gatebox.mailserver")

CONCURRENT = 2
REQUEST_LIMIT = checkpassword.REQUEST_LIMIT + 512
# From the connection: the request sent, then a turn taken. The check itself
# takes a few seconds more before the client's ANSWER_SECONDS run out.
REQUEST_SECONDS = 30.0
WAIT_SECONDS = checkpassword.ANSWER_SECONDS - 15.0
SOCKET_NAME = "auth"
SLOW_SECONDS = 1.0    # a login this slow is logged with where its time went


def socket_directory(tag: str) -> Path:
    # Under the temporary directory: a socket path must stay under ~100 bytes.
    return Path(tempfile.gettempdir()) / f"gatebox-auth-{tag}"


def private_directory(path: Path) -> Path:
    """PATH as a directory of this user's alone (0700), made if missing. One
    someone else made or can write to is refused: the socket answers logins."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or \
            stat.S_IMODE(found.st_mode) & 0o077:
        raise RuntimeError(f"{path} is not a private directory of this user; remove it")
    return path


def parse(request: bytes) -> tuple[str, str, str, str]:
    """(client ip, service, name, password) from a request."""
    parts = request.split(b"\0")
    if len(parts) < 4:
        raise ValueError("malformed checkpassword request")
    return tuple(part.decode("utf-8", "replace") for part in parts[:4])


class AuthService:
    def __init__(self, data_dir: Path, tag: str):
        self.data_dir = Path(data_dir)
        self.directory = socket_directory(tag)
        self.socket_path = self.directory / SOCKET_NAME
        self.server: asyncio.AbstractServer | None = None
        self._turns = asyncio.Semaphore(CONCURRENT)
        # The checks under way, by their login: the password only as an HMAC
        # under a key of this process's, never kept in the clear.
        self._checking: dict[tuple, asyncio.Future] = {}
        self._key = os.urandom(32)

    async def start(self):
        private_directory(self.directory)
        self.socket_path.unlink(missing_ok=True)   # left by a process that died
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)

    async def stop(self):
        server, self.server = self.server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        self.socket_path.unlink(missing_ok=True)

    async def _check_once(self, user, password, client_ip, service, connected: float):
        """The outcome of this login: its own check, or the one under way
        for the same login."""
        key = (user, client_ip, service,
               hmac.new(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest())
        running = self._checking.get(key)
        if running is None:
            running = asyncio.ensure_future(
                self._check_in_turn(user, password, client_ip, service, connected))
            self._checking[key] = running
            running.add_done_callback(lambda _done: self._checking.pop(key, None))
        # Shielded: one waiter's client leaving does not cancel the others' answer.
        return await asyncio.shield(running)

    async def _check_in_turn(self, user, password, client_ip, service, connected: float):
        # A login still waiting WAIT_SECONDS after it connected is answered
        # 111 unchecked: its client program gives up at ANSWER_SECONDS, and a
        # check run for no one would still cost a hash and count an attempt,
        # and keep a backlog answering too late long after a storm ended.
        deadline = connected + WAIT_SECONDS
        try:
            # A free turn is taken without waiting, so the deadline is looked at first.
            if asyncio.get_running_loop().time() >= deadline:
                raise asyncio.TimeoutError
            async with asyncio.timeout_at(deadline):
                await self._turns.acquire()
        except asyncio.TimeoutError:
            log.warning("checkpassword: %s had no turn %gs after it connected: answered as a "
                        "temporary failure", client_ip or "a client", WAIT_SECONDS)
            return checkpassword.TEMPORARY_FAILURE
        loop = asyncio.get_running_loop()
        turn = loop.time()
        try:
            return await loop.run_in_executor(
                None, checkpassword.check, self.data_dir, user, password, client_ip, service)
        finally:
            self._turns.release()
            waited, took = turn - connected, loop.time() - turn
            if waited + took >= SLOW_SECONDS:
                # What a storm's logins wait for: a turn, or the check itself.
                log.info("checkpassword: a login from %s waited %.1fs for a turn and was "
                         "checked in %.1fs", client_ip or "a client", waited, took)

    @staticmethod
    async def _request(reader: asyncio.StreamReader, connected: float) -> bytes | None:
        """The request up to its end, None when it did not come in time."""
        try:
            async with asyncio.timeout_at(connected + REQUEST_SECONDS):
                request = await reader.read(REQUEST_LIMIT + 1)
                while len(request) <= REQUEST_LIMIT and (more := await reader.read(
                        REQUEST_LIMIT + 1 - len(request))):
                    request += more
        except asyncio.TimeoutError:
            return None
        if len(request) > REQUEST_LIMIT:
            raise ValueError("checkpassword request too long")
        return request

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        connected = asyncio.get_running_loop().time()
        try:
            try:
                request = await self._request(reader, connected)
                if request is None:
                    log.warning("checkpassword: the request was not sent within %gs of "
                                "connecting: answered as a temporary failure", REQUEST_SECONDS)
                    outcome = checkpassword.TEMPORARY_FAILURE
                else:
                    client_ip, service, user, password = parse(request)
                    outcome = await self._check_once(user, password, client_ip, service,
                                                     connected)
            except Exception as error:  # whatever it is, the login is tried again later
                log.warning("checkpassword: %s: %s", type(error).__name__, error)
                outcome = checkpassword.TEMPORARY_FAILURE
            writer.write(checkpassword.reply_script(outcome).encode())
            await writer.drain()
        except (ConnectionError, asyncio.TimeoutError):
            pass    # the client program went away: Dovecot has its answer already
        finally:
            writer.close()
