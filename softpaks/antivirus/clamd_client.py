"""Our own client for clamd's unix socket (the PyPI ones are unmaintained or
GPL). One connection per command, each command in its NUL-terminated "z"
form so replies end with a NUL as well:

  zPING -> PONG          zVERSION -> "ClamAV 1.4.6/27000/Tue Dec  1 09:30:00 2024"
  zRELOAD -> RELOADING   zSHUTDOWN -> (clamd closes and exits)
  zINSTREAM, then chunks of <4-byte big-endian length><bytes>, then a zero
  length -> "stream: OK" | "stream: NAME FOUND" | "... ERROR"

Every failure to get an answer (no socket, refused, timeout, a broken
database, any ERROR reply) is ScannerUnavailable, so the caller has one
thing to decide on: what its "When the Scanner Fails" setting says."""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

CHUNK_BYTES = 256 * 1024
SIZE_LIMIT_REPLY = "INSTREAM size limit exceeded"
MAX_REPLY_BYTES = 64 * 1024


class ScannerUnavailable(Exception):
    """clamd could not give a verdict: not running, not answering in time,
    its database broken, or it answered ERROR."""


class ScanTooLarge(ScannerUnavailable):
    """The stream went over clamd's StreamMaxLength."""


@dataclass(frozen=True)
class Finding:
    """A virus found: `name` as clamd reports it (e.g. "Win.Test.EICAR_HDB-1").
    Comes from the scanned data: sanitise before putting it in a reply or header."""
    name: str


def parse_version(text: str) -> tuple[str, int | None, datetime | None]:
    """("1.4.6", 27000, the signatures' build time in UTC) from a zVERSION reply
    "ClamAV 1.4.6/27000/Tue Dec  1 09:30:00 2024". The signature fields are
    None when clamd has only local signatures (the reply is then "ClamAV 1.4.6")
    or they do not parse. clamd prints the build time in its local time zone,
    which is the box's."""
    fields = text.strip().strip("\0").split("/")
    engine = fields[0].strip()
    if engine.startswith("ClamAV "):
        engine = engine[len("ClamAV "):].strip()
    version = None
    if len(fields) > 1 and fields[1].strip().isdigit():
        version = int(fields[1].strip())
    built = None
    if len(fields) > 2:
        try:
            local = datetime.strptime(" ".join(fields[2].split()), "%a %b %d %H:%M:%S %Y")
            built = local.astimezone(timezone.utc)
        except ValueError:
            built = None
    return engine, version, built


def _chunks(data: bytes | bytearray | memoryview | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = (data,)
    for piece in data:
        view = memoryview(piece)
        for start in range(0, len(view), CHUNK_BYTES):
            yield view[start:start + CHUNK_BYTES]


class Clamd:
    """A clamd listening on `socket_path`. Each call opens its own connection,
    so one object serves any number of concurrent scans. `timeout` bounds each
    whole command (connect, send, verdict) in seconds.

    The *_sync wrappers are for the CLI and the web admin; they run their own
    event loop, so never call them from inside a running one."""

    def __init__(self, socket_path, timeout: float = 30.0):
        self.socket_path = Path(socket_path)
        self.timeout = timeout

    # ---- async API ----------------------------------------------------------------
    async def ping(self) -> bool:
        """True when clamd answers PONG; False (never an exception) otherwise."""
        try:
            return await self._command(b"zPING\0") == "PONG"
        except ScannerUnavailable:
            return False

    async def version(self) -> str:
        """The raw zVERSION reply; parse_version() takes it apart."""
        reply = await self._command(b"zVERSION\0")
        if not reply.startswith("ClamAV"):
            raise ScannerUnavailable(f"clamd answered {reply!r} to VERSION")
        return reply

    async def reload(self) -> None:
        """Asks clamd to load its signatures again (it answers at once and
        reloads in the background; with ConcurrentDatabaseReload no, scans
        wait while it does)."""
        reply = await self._command(b"zRELOAD\0")
        if reply != "RELOADING":
            raise ScannerUnavailable(f"clamd answered {reply!r} to RELOAD")

    async def shutdown(self) -> None:
        """Asks clamd to exit. Returns once clamd has closed the connection."""
        await self._command(b"zSHUTDOWN\0")

    async def scan(self, data: bytes | Iterable[bytes]) -> Finding | None:
        """Scans `data` (bytes, or an iterable of byte chunks streamed as they
        come) as one file. None when clean, a Finding when a signature
        matched. ScanTooLarge over StreamMaxLength; ScannerUnavailable for
        every other failure."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                with await self._connect() as sock:
                    try:
                        await loop.sock_sendall(sock, b"zINSTREAM\0")
                        for chunk in _chunks(data):
                            if chunk:
                                await loop.sock_sendall(sock, struct.pack(">I", len(chunk)))
                                await loop.sock_sendall(sock, chunk)
                        await loop.sock_sendall(sock, struct.pack(">I", 0))
                    except (BrokenPipeError, ConnectionResetError):
                        # clamd stops reading and answers as soon as the stream
                        # goes over its limit: its reply is still there to read.
                        pass
                    reply = await self._reply(sock)
        except TimeoutError:
            raise ScannerUnavailable(f"clamd gave no verdict within {self.timeout:g} s") from None
        return self._verdict(reply)

    # ---- sync wrappers --------------------------------------------------------------
    def ping_sync(self) -> bool:
        return asyncio.run(self.ping())

    def version_sync(self) -> str:
        return asyncio.run(self.version())

    def scan_sync(self, data: bytes | Iterable[bytes]) -> Finding | None:
        return asyncio.run(self.scan(data))

    def reload_sync(self) -> None:
        asyncio.run(self.reload())

    def shutdown_sync(self) -> None:
        asyncio.run(self.shutdown())

    # ---- protocol ---------------------------------------------------------------------
    # Plain non-blocking sockets rather than asyncio streams: after a failed
    # write a stream transport closes and drops what clamd already answered,
    # and that answer is the size-limit error.
    async def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, str(self.socket_path))
        except (FileNotFoundError, ConnectionRefusedError) as error:
            sock.close()
            raise ScannerUnavailable(f"clamd is not running ({self.socket_path}: "
                                     f"{error.strerror})") from None
        except BaseException as error:
            sock.close()
            if isinstance(error, OSError):
                raise ScannerUnavailable(f"cannot reach clamd at {self.socket_path}: "
                                         f"{error}") from None
            raise
        return sock

    async def _command(self, command: bytes) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                with await self._connect() as sock:
                    await asyncio.get_running_loop().sock_sendall(sock, command)
                    return await self._reply(sock)
        except TimeoutError:
            raise ScannerUnavailable(f"clamd did not answer within {self.timeout:g} s") from None
        except (BrokenPipeError, ConnectionResetError) as error:
            raise ScannerUnavailable(f"clamd dropped the connection: {error}") from None

    @staticmethod
    async def _reply(sock: socket.socket) -> str:
        """Up to the terminating NUL, or whatever came before clamd closed
        (SHUTDOWN closes without a word: an empty reply)."""
        loop = asyncio.get_running_loop()
        raw = bytearray()
        while b"\0" not in raw:
            if len(raw) > MAX_REPLY_BYTES:
                raise ScannerUnavailable("clamd's reply has no end")
            try:
                piece = await loop.sock_recv(sock, 4096)
            except ConnectionResetError as error:
                if raw:
                    break
                raise ScannerUnavailable(f"clamd dropped the connection: {error}") from None
            if not piece:
                break
            raw += piece
        return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace").strip()

    @staticmethod
    def _verdict(reply: str) -> Finding | None:
        if SIZE_LIMIT_REPLY in reply:
            raise ScanTooLarge(reply)
        if reply.endswith("ERROR") or not reply.startswith("stream:"):
            raise ScannerUnavailable(f"clamd answered {reply!r}" if reply
                                     else "clamd closed the connection without a verdict")
        result = reply[len("stream:"):].strip()
        if result == "OK":
            return None
        if result.endswith(" FOUND"):
            return Finding(result[:-len(" FOUND")].strip())
        raise ScannerUnavailable(f"clamd answered {reply!r}")
