"""While the SoftPak is not licensed Dovecot does not run; this stand-in
holds the POP3 and IMAP4 ports so a mail client is told why it cannot log in
(and that the mail is kept) instead of meeting a closed port. It never
touches a mailbox."""

from __future__ import annotations

import asyncio
import logging

from .access import UNLICENSED

log = logging.getLogger("gatebox.mailbox-access")
IDLE_SECONDS = 60


class RefusalService:
    def __init__(self, *, bind: str, pop3_port: int, imap_port: int):
        self.bind, self.pop3_port, self.imap_port = bind, pop3_port, imap_port
        self.name = f"mailbox access refusal {bind} pop3={pop3_port} imap={imap_port}"
        self.servers: list[asyncio.base_events.Server] = []

    async def start(self):
        host = None if self.bind in ("0.0.0.0", "::", "") else self.bind
        try:
            if self.pop3_port:
                self.servers.append(await asyncio.start_server(_pop3, host, self.pop3_port))
            if self.imap_port:
                self.servers.append(await asyncio.start_server(_imap, host, self.imap_port))
        except OSError:
            await self.stop()
            raise

    async def stop(self):
        for server in self.servers:
            server.close()
            await server.wait_closed()
        self.servers = []


async def _lines(reader):
    while True:
        line = await asyncio.wait_for(reader.readline(), IDLE_SECONDS)
        if not line:
            return
        yield line.decode("utf-8", "replace").strip()


async def _serve(writer, talk):
    try:
        await talk()
    except (asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def _pop3(reader, writer):
    async def talk():
        writer.write(b"+OK gatebox POP3 (mailbox access is off)\r\n")
        async for line in _lines(reader):
            command = line.split(" ", 1)[0].upper()
            if command == "QUIT":
                writer.write(b"+OK bye\r\n")
                break
            if command in ("USER", "NOOP"):
                writer.write(b"+OK\r\n")
            else:
                writer.write(f"-ERR [SYS/PERM] {UNLICENSED}\r\n".encode())
            await writer.drain()
        await writer.drain()
    await _serve(writer, talk)


async def _imap(reader, writer):
    async def talk():
        writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] gatebox IMAP4 "
                     b"(mailbox access is off)\r\n")
        async for line in _lines(reader):
            tag, _, rest = line.partition(" ")
            command = rest.split(" ", 1)[0].upper()
            if command == "LOGOUT":
                writer.write(f"* BYE logging out\r\n{tag} OK LOGOUT completed\r\n".encode())
                break
            if command == "CAPABILITY":
                writer.write(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n".encode())
            elif command == "NOOP":
                writer.write(f"{tag} OK done\r\n".encode())
            else:
                writer.write(f"{tag} NO [UNAVAILABLE] {UNLICENSED}\r\n".encode())
            await writer.drain()
        await writer.drain()
    await _serve(writer, talk)
