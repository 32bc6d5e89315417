"""SMTP out: to the LAN mail server, the smarthost or a domain's MX.

An asyncio client on the queue manager's own loop: a delivery costs no
thread hand-off, and forty of them at once do not fight over the GIL the
way forty blocking smtplib sessions in worker threads did (a quarter of the
CPU per message, bench/README.md). Opportunistic STARTTLS, AUTH when the
destination has credentials (only over TLS unless the server is on loopback
or a Trusted Network), the four Advanced SMTP timeouts, and reuse of idle
connections per destination. Replies are read as from any untrusted server
(firmware.mail.smtp_reply): capped lines, capped replies."""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import os
import re
import ssl
import time
from dataclasses import dataclass

from ..addresses import in_networks, is_clean
from ..headers import safe_text
from ..mx import LookupFailed, mail_hosts
from ..route import Destination
from ..smtp_reply import LINE_LIMIT, QUIT_SECONDS, ProtocolError, Reply, quit_session, read_reply

log = logging.getLogger("gatebox.smtp")

IDLE_REUSE_SECONDS = 20
MAX_IDLE_PER_SERVER = 32
# A connection returned after a completed transaction moments ago is reused
# without an RSET round trip; an older one is probed first.
TRUST_CLEAN_SECONDS = 2.0
# smtplib's order of preference, strongest first.
AUTH_MECHANISMS = ("CRAM-MD5", "PLAIN", "LOGIN")


@dataclass(frozen=True)
class Result:
    status: str     # sent | temp | perm
    detail: str
    relay: str = ""


def _classify(reply: Reply, relay: str) -> Result:
    # A remote reply goes into the log and DSN headers: printable text only.
    detail = safe_text(f"{reply.code} " + "\n".join(reply.lines), 900)
    if 200 <= reply.code < 300:
        return Result("sent", detail, relay)
    return Result("perm" if 500 <= reply.code < 600 else "temp", detail, relay)


class _Failure(Exception):
    """The whole attempt failed before any recipient was decided."""

    def __init__(self, result: Result, try_next_host: bool):
        super().__init__(result.detail)
        self.result = result
        self.try_next_host = try_next_host


class _Lost(Exception):
    """The connection broke (closed, timed out, or the server's bytes are
    not SMTP) in the middle of a transaction."""


def _why(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.errno and not isinstance(error, ssl.SSLError):
        # asyncio words a refused connection "Connect call failed (...)";
        # the queue listing and the DSNs say what the system calls it.
        return f"[Errno {error.errno}] {os.strerror(error.errno)}"
    return str(error) or type(error).__name__


class _Connection:
    """One SMTP session: its streams, the extensions its EHLO named and the
    time limit for a command's reply."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, relay: str,
                 command_seconds: float):
        self.reader, self.writer, self.relay = reader, writer, relay
        self.command_seconds = command_seconds
        self.extensions: dict[str, str] = {}
        self.tls = False
        self.last_used = time.monotonic()

    def offers(self, extension: str) -> bool:
        return extension in self.extensions

    async def reply(self, seconds: float | None = None) -> Reply:
        async with asyncio.timeout(self.command_seconds if seconds is None else seconds):
            return await read_reply(self.reader)

    async def send(self, data: bytes):
        self.writer.write(data)
        async with asyncio.timeout(self.command_seconds):
            await self.writer.drain()

    async def command(self, line: str) -> Reply:
        await self.send(_command_line(line).encode("utf-8"))
        return await self.reply()

    async def hello(self, name: str) -> Reply:
        reply = await self.command(f"EHLO {name}")
        self.extensions = {}
        if reply.code != 250:
            return await self.command(f"HELO {name}")
        for line in reply.lines[1:]:
            keyword, _, parameters = line.strip().partition(" ")
            if keyword.lower().startswith("auth="):
                # The pre-RFC 4954 form some servers still add: "AUTH=LOGIN PLAIN".
                keyword, parameters = "auth", " ".join(
                    (self.extensions.get("auth", ""), keyword[5:], parameters))
            self.extensions[keyword.lower()] = parameters.strip()
        return reply

    def buffered(self) -> bool:
        # StreamReader has no public call for what it holds unread.
        return bool(self.reader._buffer)

    def usable(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    def abort(self):
        self.writer.transport.abort()

    async def close(self):
        await quit_session(self.reader, self.writer,
                           asyncio.get_running_loop().time() + QUIT_SECONDS)


class SmtpDelivery:
    def __init__(self, helo_name: str):
        self.helo_name = helo_name
        self._idle: dict[tuple, list[_Connection]] = {}
        self._tls = ssl.create_default_context()
        # Opportunistic TLS, as Postfix's "may" level: encrypt when offered,
        # do not refuse to deliver over an unverifiable certificate.
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE

    async def deliver(self, destination: Destination, sender: str, recipients: list[str],
                      message: bytes, settings, body_8bit: bool = False) -> dict[str, Result]:
        refused = _unsendable(sender, recipients)
        recipients = [r for r in recipients if r not in refused]
        if not recipients:
            return refused
        return {**refused, **await self._deliver(destination, sender, recipients, message,
                                                 settings, body_8bit)}

    async def _deliver(self, destination, sender, recipients, message, settings, body_8bit):
        try:
            targets = await self._targets(destination, settings)
        except LookupFailed as error:
            result = Result("perm" if error.permanent else "temp", str(error))
            return {r: result for r in recipients}
        last = Result("temp", "no mail server could be reached")
        for host, address, port in targets:
            try:
                return await self._attempt(destination, host, address, port, sender, recipients,
                                           message, settings, body_8bit)
            except _Failure as failure:
                last = failure.result
                if not failure.try_next_host:
                    break
        return {r: last for r in recipients}

    async def close_idle(self, older_than: float = 0.0):
        now = time.monotonic()
        stale = []
        for connections in self._idle.values():
            # In place, before any await: a connection is in one pool or
            # owned by one delivery, never both.
            stale += [c for c in connections if now - c.last_used >= older_than]
            connections[:] = [c for c in connections if now - c.last_used < older_than]
        await asyncio.gather(*(connection.close() for connection in stale))

    # ---- internals -------------------------------------------------------------
    async def _targets(self, destination: Destination, settings):
        if destination.kind != "mx":
            return [(destination.host, destination.host, destination.port)]
        # dnspython's resolver blocks: the look-up alone goes to a thread.
        hosts = await asyncio.get_running_loop().run_in_executor(
            None, mail_hosts, destination.host, settings)
        return [(host, address, 25) for host, addresses in hosts for address in addresses]

    async def _attempt(self, destination, host, address, port, sender, recipients, message,
                       settings, body_8bit):
        key = (address, port, destination.login)
        connection = await self._take_idle(key)
        if connection is not None:
            try:
                results = await self._transaction(connection, sender, recipients, message,
                                                  settings, body_8bit)
                await self._give_back(key, connection)
                return results
            except _Lost:
                # The server dropped an idle connection: try once on a new one.
                connection.abort()
            except BaseException:   # cancelled (a stop): the session is in an unknown state
                connection.abort()
                raise
        connection = await self._connect(destination, host, address, port, settings)
        try:
            results = await self._transaction(connection, sender, recipients, message, settings,
                                              body_8bit)
        except _Lost as error:
            connection.abort()
            raise _Failure(Result("temp", f"lost connection with {connection.relay}: {error}",
                                  connection.relay), try_next_host=True) from None
        except BaseException:
            connection.abort()
            raise
        await self._give_back(key, connection)
        return results

    async def _take_idle(self, key):
        """An idle connection to `key`, owned by the caller alone once popped."""
        while connections := self._idle.get(key):
            connection = connections.pop()
            idle = time.monotonic() - connection.last_used
            if idle > IDLE_REUSE_SECONDS or not connection.usable():
                connection.abort()  # no QUIT: a stale connection is not worth a wait
                continue
            if idle < TRUST_CLEAN_SECONDS:
                return connection  # just came back from a finished transaction
            try:
                if (await connection.command("RSET")).code == 250:
                    return connection
            except (OSError, ProtocolError):
                pass
            except BaseException:
                connection.abort()
                raise
            connection.abort()
        return None

    async def _give_back(self, key, connection: _Connection):
        connection.last_used = time.monotonic()
        pool = self._idle.setdefault(key, [])
        if len(pool) < MAX_IDLE_PER_SERVER:
            pool.append(connection)
            return
        await connection.close()

    async def _connect(self, destination: Destination, host, address, port,
                       settings) -> _Connection:
        relay = f"{host}[{address}]:{port}"
        try:
            async with asyncio.timeout(settings["email.timeout_connect_min"] * 60):
                reader, writer = await asyncio.open_connection(address, port, limit=LINE_LIMIT)
        except OSError as error:
            raise _Failure(Result("temp", f"connect to {relay}: {_why(error)}", relay),
                           try_next_host=True) from None
        connection = _Connection(reader, writer, relay, settings["email.timeout_command_min"] * 60)
        try:
            # The greeting is part of connecting, as smtplib and Postfix time it.
            greeting = await connection.reply(settings["email.timeout_connect_min"] * 60)
            if greeting.code != 220:
                raise _Failure(_classify(greeting, relay), try_next_host=True)
            hello = await connection.hello(self.helo_name)
            if hello.code != 250:
                raise _Failure(_classify(hello, relay), try_next_host=True)
            if connection.offers("starttls"):
                reply = await connection.command("STARTTLS")
                if reply.code != 220:
                    raise _Failure(_classify(reply, relay), try_next_host=True)
                if connection.buffered():
                    # Clear text sent behind the 220 would be read as the
                    # encrypted session's first reply (STARTTLS injection).
                    raise ProtocolError("data after the STARTTLS reply, before the handshake")
                async with asyncio.timeout(connection.command_seconds):
                    # The name goes out as SNI; an address sends none.
                    await writer.start_tls(self._tls, server_hostname=host)
                connection.tls = True
                await connection.hello(self.helo_name)
            if destination.login:
                await self._authenticate(connection, destination, address, settings)
        except _Failure:
            connection.abort()
            raise
        except (OSError, ProtocolError, ssl.SSLError) as error:
            connection.abort()
            raise _Failure(Result("temp", f"{relay}: {_why(error)}", relay),
                           try_next_host=True) from None
        except BaseException:
            connection.abort()
            raise
        return connection

    async def _authenticate(self, connection: _Connection, destination, address, settings):
        relay = connection.relay
        nearby = address.startswith("127.") or address == "::1" or in_networks(
            address, settings["email.trusted_networks"])
        if not connection.tls and not nearby:
            raise _Failure(Result("temp", f"{relay} offers no STARTTLS; not sending the password "
                                          "in clear text", relay), try_next_host=True)
        if not connection.offers("auth"):
            raise _Failure(Result("temp", f"{relay} does not offer AUTH", relay),
                           try_next_host=False)
        offered = connection.extensions["auth"].upper().split()
        mechanisms = [m for m in AUTH_MECHANISMS if m in offered]
        if not mechanisms:
            raise _Failure(Result("temp", f"{relay} offers no AUTH mechanism gatebox knows "
                                          f"({safe_text(' '.join(offered), 100)})", relay),
                           try_next_host=True)
        for mechanism in mechanisms:
            # The next one after a refusal, as smtplib's login() goes on: a
            # server may offer CRAM-MD5 and keep only hashed passwords.
            reply = await _sasl(connection, mechanism, destination.login, destination.password)
            # 503: authenticated already (smtplib takes it as success too).
            if reply.code in (235, 503):
                return
        # Held, not bounced: wrong credentials are the administrator's to fix.
        raise _Failure(Result("temp", f"SASL authentication failed at {relay}: {reply.code} "
                                      f"{safe_text(' '.join(reply.lines), 200)}", relay),
                       try_next_host=False)

    async def _transaction(self, connection: _Connection, sender, recipients, message, settings,
                           body_8bit) -> dict[str, Result]:
        try:
            return await self._exchange(connection, sender, recipients, message, settings,
                                        body_8bit)
        except (OSError, ProtocolError) as error:
            raise _Lost(_why(error)) from None

    async def _exchange(self, connection: _Connection, sender, recipients, message, settings,
                        body_8bit) -> dict[str, Result]:
        relay = connection.relay
        options = []
        if not (sender.isascii() and all(r.isascii() for r in recipients)):
            if not connection.offers("smtputf8"):
                refused = Result("perm", f"{relay} does not offer SMTPUTF8, which an address "
                                         "of this message needs (5.6.7)", relay)
                return {r: refused for r in recipients}
            options.append("SMTPUTF8")
        if connection.offers("size"):
            options.append(f"SIZE={len(message)}")
        if body_8bit and connection.offers("8bitmime"):
            options.append("BODY=8BITMIME")
        # The paths go out exactly as they were accepted, never re-parsed.
        mail = f"MAIL FROM:<{sender}>" + "".join(f" {o}" for o in options)
        rcpts = [f"RCPT TO:<{recipient}>" for recipient in recipients]
        if connection.offers("pipelining"):
            mail_reply, rcpt_replies, data_reply = await _pipelined_envelope(connection, mail,
                                                                             rcpts)
        else:
            mail_reply, rcpt_replies, data_reply = await _lockstep_envelope(connection, mail,
                                                                            rcpts)
        results, accepted = {}, []
        if mail_reply.code != 250:
            result = _classify(mail_reply, relay)
            results = {r: result for r in recipients}
        else:
            for recipient, reply in zip(recipients, rcpt_replies):
                if _recipient_accepted(reply.code):
                    accepted.append(recipient)
                else:
                    results[recipient] = _classify(reply, relay)
        if not accepted or data_reply.code != 354:
            if data_reply.code == 354:
                # A pipelined DATA the server took although no recipient was
                # accepted: an empty message ends it (RFC 2920, 3.1).
                await connection.send(b".\r\n")
                await connection.reply()
            await connection.command("RSET")
            if accepted:
                final = _classify(data_reply, relay)
                results.update({r: final for r in accepted})
            return results
        final = _classify(await send_body(connection, message,
                                          settings["email.timeout_datablock_min"] * 60,
                                          settings["email.timeout_termination_min"] * 60), relay)
        for recipient in accepted:
            results[recipient] = final
        return results


_NO_REPLY = Reply(503, ("not sent",))


def _command_line(command: str) -> str:
    # A CR or LF would end the command early and start another one of the
    # address's choosing.
    if "\r" in command or "\n" in command:
        raise ValueError(f"command contains prohibited newline characters: {command!r}")
    return command + "\r\n"


async def _pipelined_envelope(connection: _Connection, mail: str, rcpts: list[str]):
    """MAIL, every RCPT and DATA in one write, then their replies in order
    (RFC 2920): one round trip where lockstep takes one per command."""
    await connection.send("".join(_command_line(c) for c in (mail, *rcpts, "DATA"))
                          .encode("utf-8"))
    mail_reply = await connection.reply()
    rcpt_replies = [await connection.reply() for _ in rcpts]
    return mail_reply, rcpt_replies, await connection.reply()


async def _lockstep_envelope(connection: _Connection, mail: str, rcpts: list[str]):
    mail_reply = await connection.command(mail)
    if mail_reply.code != 250:
        return mail_reply, [], _NO_REPLY
    rcpt_replies = [await connection.command(rcpt) for rcpt in rcpts]
    if not any(_recipient_accepted(reply.code) for reply in rcpt_replies):
        return mail_reply, rcpt_replies, _NO_REPLY
    return mail_reply, rcpt_replies, await connection.command("DATA")


def _recipient_accepted(code: int) -> bool:
    return code in (250, 251)


async def _sasl(connection: _Connection, mechanism: str, login: str, password: str) -> Reply:
    """One AUTH exchange (RFC 4954). The secrets go out base64-encoded, so no
    character of theirs can end the line."""
    def encoded(text: bytes) -> str:
        return base64.b64encode(text).decode("ascii")
    user, secret = login.encode("utf-8"), password.encode("utf-8")
    if mechanism == "PLAIN":
        return await connection.command("AUTH PLAIN " + encoded(b"\0" + user + b"\0" + secret))
    if mechanism == "LOGIN":
        reply = await connection.command("AUTH LOGIN " + encoded(user))
        return await connection.command(encoded(secret)) if reply.code == 334 else reply
    reply = await connection.command("AUTH CRAM-MD5")
    if reply.code != 334:
        return reply
    try:
        challenge = base64.b64decode(reply.lines[0].strip(), validate=True)
    except ValueError:
        await connection.command("*")   # cancels the exchange (RFC 4954, 4)
        raise ProtocolError("the CRAM-MD5 challenge is not base64") from None
    digest = hmac.new(secret, challenge, "md5").hexdigest()
    return await connection.command(encoded(user + b" " + digest.encode("ascii")))


DATA_CHUNK = 64 * 1024
_LEADING_DOT = re.compile(rb"(?m)^\.")


def data_chunks(message: bytes):
    """The message dot-stuffed, in chunks cut at line ends, the last one
    with the final dot. Never the whole stuffed copy at once: a large
    message is in memory once, not three times as smtplib's data() has it."""
    start, view = 0, memoryview(message)
    ending = b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n"
    while True:
        end = message.find(b"\n", start + DATA_CHUNK)
        end = len(message) if end < 0 else end + 1
        # A chunk starts at a line's start, so ^ matches exactly where
        # stuffing the whole message would.
        chunk = _LEADING_DOT.sub(b"..", view[start:end])
        start = end
        if start >= len(message):
            # The last chunk and the final dot in one write: a dot sent on
            # its own waits for the peer to acknowledge the chunk (Nagle),
            # and a peer with nothing to answer yet delays that ACK (40 ms).
            yield chunk + ending
            return
        yield chunk


async def send_body(connection: _Connection, message: bytes, block_seconds: float,
                    termination_seconds: float) -> Reply:
    """The message after a 354, then the server's reply. Each chunk has the
    data block limit and the reply to the final dot the termination limit:
    limits on a stall, so a large message on a slow line still goes."""
    for chunk in data_chunks(message):
        connection.writer.write(chunk)
        async with asyncio.timeout(block_seconds):
            await connection.writer.drain()
    return await connection.reply(termination_seconds)


def _unsendable(sender: str, recipients: list[str]) -> dict[str, Result]:
    """Recipients that must not be put into an SMTP command, with why. The
    queue takes no such address (submit refuses it); this holds for any
    file that reached the queue another way."""
    if not is_clean(sender):
        reason = Result("perm", "the envelope sender holds characters not allowed in an "
                                f"address (5.1.7): <{safe_text(sender, 100)}>; not sent")
        return {r: reason for r in recipients}
    return {r: Result("perm", "the recipient holds characters not allowed in an address "
                              f"(5.1.3): <{safe_text(r, 100)}>; not sent")
            for r in recipients if not is_clean(r)}
