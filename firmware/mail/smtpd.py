"""SMTP in: decides and enqueues, never delivers inline.

aiosmtpd speaks the protocol; this module adds what a gateway needs on top:
the policy chain at every stage (connect, each command, HELO, MAIL, RCPT,
DATA), the scoring pass at the end of DATA, STARTTLS injection defence,
duplicate suppression, enhanced status codes and Postfix-style log lines.
Every refusal of mail is a named check of the chain (firmware.mail.checks):
this module only counts, measures and reports to it, and says what the
chain decided. The protocol's own syntax errors (501, 503 ...) stay with
aiosmtpd."""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import re
import threading
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, syntax

from firmware import __version__, accounts
from firmware.login_limits import MAIL, Attempt, LoginLimiter, Outcome
from firmware.login_limits import shared as shared_limiter
from firmware.config import Store

from . import addresses, aiosmtpd_speedups, message_data, resolver, scoring
from .addresses import in_networks
from .checks import message_size_limit
from .duplicates import DuplicateFilter
from .headers import safe_text, summary
from .policy import Context, Policy, Verdict
from .quarantine import Quarantine
from .queue import FileSpan, Spool, out_of_space
from .smtpd_shared import LocalConnections
from .submit import Submission, submit_async

log = logging.getLogger("gatebox.smtpd")
aiosmtpd_speedups.install()
_PLAIN_PATH = re.compile(r"\s*<([A-Za-z0-9._+=-]{1,64}@[A-Za-z0-9.-]{1,253})>(.*)\Z", re.S)

_HAS_ENHANCED = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}( |$)")
_DEFAULT_ENHANCED = {
    "221": "2.0.0", "235": "2.7.0", "250": "2.0.0", "252": "2.0.0",
    "421": "4.3.0", "450": "4.2.0", "451": "4.3.0", "452": "4.3.1", "454": "4.7.0",
    "500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4",
    "530": "5.7.0", "535": "5.7.8", "538": "5.7.11", "550": "5.0.0", "552": "5.3.4",
    "553": "5.1.3", "554": "5.0.0",
}


def with_enhanced_code(reply: str) -> str:
    """RFC 2034: every 2xx/4xx/5xx reply but the greeting and HELO/EHLO
    carries an enhanced status code. aiosmtpd's own replies lack them."""
    if _HAS_ENHANCED.match(reply) or len(reply) < 4 or reply[3] not in " -":
        return reply
    enhanced = _DEFAULT_ENHANCED.get(reply[:3])
    if enhanced is None:
        return reply
    return f"{reply[:4]}{enhanced} {reply[4:]}"


# Connections the kernel completes while the event loop is busy wait here to
# be accepted. asyncio's default of 100 drops the rest of a burst: a client
# whose final ACK was dropped believes it is connected and waits for a banner
# that never comes. Too many sessions are refused by the connection caps
# (421), never by a full queue. The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024

# DATA is taken in reads of this size, cut at the last line end.
DATA_READ = 64 * 1024


def _data_block(data: bytes, at_line_start: bool) -> tuple[bytes, bytes, int | None]:
    """(the whole lines of data to take now, the rest to keep for the next
    read, and where the final ".\r\n" starts in them, or None)."""
    cut = data.rfind(b"\r\n") + 2
    if cut < 2:
        if len(data) < DATA_READ:
            return b"", data, None  # wait for the line's end
        # A line longer than a read is taken in pieces, none of which can be
        # the end. A CR at the end waits: it may be half of the line's CRLF.
        cut = len(data) - 1 if data.endswith(b"\r") else len(data)
        return data[:cut], data[cut:], None
    block, rest = data[:cut], data[cut:]
    if at_line_start and block.startswith(b".\r\n"):
        return block, rest, 0
    found = block.find(b"\r\n.\r\n")
    return block, rest, (found + 2 if found >= 0 else None)


def _unstuff(block: bytes, at_line_start: bool) -> bytes:
    """RFC 5321 4.5.2: the leading period of every line is removed."""
    if at_line_start and block[:1] == b".":
        block = block[1:]
    return block.replace(b"\r\n.", b"\r\n")


def _unread(reader: asyncio.StreamReader, data: bytes):
    """Put data back in front of what the reader holds (a read took it past
    the end of DATA). asyncio has no public way; its buffer is a bytearray,
    as smtp_STARTTLS's check relies on too."""
    if data:
        reader._buffer[0:0] = data  # noqa: SLF001


class Gateway:
    """State shared by every SMTP connection of one running box."""

    def __init__(self, *, watcher, spool: Spool, policy: Policy, tls_context,
                 on_enqueued=lambda qid: None, hostname: str | None = None, stats=None,
                 dns: resolver.Resolver | None = None, limiter: LoginLimiter | None = None,
                 quarantine: Quarantine | None = None, connections=None,
                 duplicates: DuplicateFilter | None = None):
        self.watcher = watcher
        self.limiter = limiter or shared_limiter
        self.spool = spool
        self.quarantine = quarantine or Quarantine(spool.root.parent)
        self.policy = policy
        self.tls_context = tls_context
        self.on_enqueued = on_enqueued
        self.hostname = hostname
        self.resolver = dns or resolver.shared()
        # Shared with the other smtpd processes when there are several
        # (firmware.mail.smtpd_shared); this process's own otherwise.
        self.connections = connections or LocalConnections()
        self._auth_local = threading.local()
        self.duplicates = duplicates or DuplicateFilter()
        self.handler = Handler(self)
        self.stats = stats

    def count(self, field: str):
        if self.stats is not None:
            self.stats.count(field)

    def count_refusal(self, check: str):
        if self.stats is not None:
            self.stats.count("rejected")
            self.stats.count_check(check)

    def count_results(self, results):
        """What the checks found, per check and result (spf=softfail)."""
        if self.stats is not None:
            for (check, result), amount in results.items():
                self.stats.count_check(f"{check}={result}", amount)

    @property
    def settings(self):
        return self.watcher.current

    async def submit_generated(self, submission: Submission) -> str:
        """Mail a check writes itself (a virus notice), queued like any other."""
        return await submit_async(self.spool, submission, self.on_enqueued, self.settings)

    def protocol_factory(self, port_kind: str):
        def factory():
            return GateboxSMTP(self, port_kind)
        return factory

    async def serve(self, host: str, port: int, port_kind: str):
        loop = asyncio.get_running_loop()
        return await loop.create_server(self.protocol_factory(port_kind), host=host, port=port,
                                        reuse_address=True, backlog=LISTEN_BACKLOG)

    async def serve_socket(self, sock, port_kind: str):
        """Serve a listening socket another smtpd process made."""
        loop = asyncio.get_running_loop()
        return await loop.create_server(self.protocol_factory(port_kind), sock=sock,
                                        backlog=LISTEN_BACKLOG)

    async def sign_in(self, client_ip: str, login: str, password: str) -> Attempt:
        """One SMTP AUTH through the login limiter. scrypt and the limiter's
        writes run off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._sign_in, client_ip, login, password)

    def _sign_in(self, client_ip: str, login: str, password: str) -> Attempt:
        # Worker threads get their own database connection; the event loop's
        # connection is never used off its thread.
        store = getattr(self._auth_local, "store", None)
        if store is None:
            store = self._auth_local.store = Store(self.watcher.store.data_dir)
        return self.limiter.attempt(store, MAIL, client_ip, login,
                                    lambda: accounts.authenticate_mail(store, login, password), "smtp")


class _PendingCredentials:
    def __init__(self, login: bytes, password: bytes):
        self.login, self.password = login, password


class _Command:
    """What aiosmtpd's command loop calls for a verb: the "command" stage of
    the chain first, then the real smtp_* method. Unknown verbs get one too,
    so their limit is a check of the chain (aiosmtpd's own fixed budget of
    unknown commands is never reached). HELP reads the real method's syntax
    through it."""
    __slots__ = ("server", "verb", "method")

    def __init__(self, server, verb: str, method):
        self.server, self.verb, self.method = server, verb, method

    async def __call__(self, arg):
        await self.server.run_command(self.verb, self.method, arg)

    def __getattr__(self, name):
        method = object.__getattribute__(self, "method")
        if method is None:
            raise AttributeError(name)
        return getattr(method, name)


class _CommandTable(dict):
    def __init__(self, server, methods: dict):
        super().__init__(methods)
        self._server = server

    def get(self, verb, default=None):
        return _Command(self._server, verb, dict.get(self, verb))


class GateboxSMTP(SMTP):
    """One SMTP connection."""

    def __init__(self, gateway: Gateway, port_kind: str):
        settings = gateway.settings
        self.gateway = gateway
        self.port_kind = port_kind
        self.context: Context | None = None
        self.received: message_data.Received | None = None
        self._counted_ip = None
        self._in_helo = False
        self._close_after_reply = False
        self._deadline = 0.0  # of the command timeout, in the loop's time
        super().__init__(
            gateway.handler,
            hostname=gateway.hostname or settings["system.hostname"],
            ident=f"ESMTP gatebox {__version__}",
            tls_context=gateway.tls_context,
            # Size and line length are checks of the chain (smtp_DATA measures).
            data_size_limit=None,
            timeout=settings["email.timeout_command_min"] * 60,
            authenticator=lambda *args: None,  # replaced by _authenticate below
            auth_require_tls=True,
            enable_SMTPUTF8=True,
        )
        self._smtp_methods = _CommandTable(self, self._smtp_methods)

    # ---- connection ----------------------------------------------------------
    def connection_made(self, transport):
        first = self.transport is None
        super().connection_made(transport)
        if not first:
            return  # re-entered after STARTTLS
        settings = self.gateway.settings
        peer = transport.get_extra_info("peername") or ("", 0)
        sock = transport.get_extra_info("sockname") or ("", 0)
        trusted = in_networks(peer[0], settings["email.trusted_networks"])
        self.context = Context(settings=settings, client_ip=peer[0], local_ip=sock[0],
                               port_kind=self.port_kind, trusted=trusted,
                               resolver=self.gateway.resolver,
                               submit=self.gateway.submit_generated)
        # Trusted LAN clients may authenticate without TLS; everyone else needs it.
        self._auth_require_tls = not trusted
        self._counted_ip = peer[0]
        self.gateway.connections.opened(peer[0])

    def connection_lost(self, error):
        if self._counted_ip is not None:
            self.gateway.connections.closed(self._counted_ip)
            log.info("disconnect from %s", _client(self.context))
            self._counted_ip = None
        super().connection_lost(error)

    async def _handle_client(self):
        ctx = self.context
        ctx.host_connections = self.gateway.connections.from_host(ctx.client_ip)
        ctx.total_connections = self.gateway.connections.total()
        log.info("connect from %s", _client(ctx))
        verdict = await self.gateway.handler.decide(self, "connect", "CONNECT")
        if verdict is not None:
            await self.push(verdict.reply)
            self.transport.close()
            return
        await super()._handle_client()

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd cancels its timer and schedules a new one on every
        # command: a handle each, and the cancelled ones sit in the loop's
        # heap until they are due, minutes later. One timer per connection
        # instead, moved on only when it comes due early; the deadline is
        # the same, the time of the last reset plus the duration.
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        armed = self._timeout_handle
        if armed is not None and not armed.cancelled() and armed.when() <= self._deadline:
            return  # it fires first, and goes on to the deadline then
        if armed is not None:
            armed.cancel()
        self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_due)

    def _timeout_due(self):
        # The loop runs a timer up to its clock's resolution early.
        if self._deadline - self.loop.time() > 0.001:
            self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_due)
            return
        self._timeout_cb()

    async def push(self, status):
        if isinstance(status, str) and not self._in_helo and not status.startswith("220 "):
            status = with_enhanced_code(status)
        await super().push(status)
        if self._close_after_reply and self.transport is not None:
            # 421: the server closes the connection (RFC 5321 3.8).
            self._close_after_reply = False
            self.transport.close()

    def close_after_reply(self, verdict: Verdict | None):
        if verdict is not None and verdict.closes_connection:
            self._close_after_reply = True

    # ---- commands ------------------------------------------------------------
    async def run_command(self, verb: str, method, arg):
        ctx = self.context
        ctx.command, ctx.command_known = verb, method is not None
        ctx.command_counts[verb if method is not None else "*"] += 1
        verdict = await self.gateway.handler.decide(self, "command", verb)
        if verdict is not None:
            self.close_after_reply(verdict)
            await self.push(verdict.reply)
            return
        if method is None:
            await self.push(f'500 5.5.2 Error: command "{safe_text(verb, 32)}" not recognized')
            return
        await method(arg)

    def _getaddr(self, arg):
        path, rest = addresses.split_path(arg or "")
        if not addresses.is_clean(path):
            # aiosmtpd's parser drops comments and quotes ('<"a\rb"@x>' comes
            # out as 'a\rb@x'), or gives up with a 553: hand the path on as
            # sent, for sender_characters / recipient_characters to refuse.
            # Its parameters are dropped: where such a path ends is a guess,
            # and a guess wrong would answer a syntax error instead.
            return addresses.unbracketed(path) + rest, ""
        # Nearly every address is a plain <local@domain>; the full RFC 5322
        # parser costs more than the rest of the command.
        match = _PLAIN_PATH.match(arg or "")
        if match:
            return match.group(1), match.group(2)
        return super()._getaddr(arg)

    async def smtp_HELO(self, hostname):
        self._in_helo = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._in_helo = False

    async def smtp_EHLO(self, hostname):
        self._in_helo = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_helo = False

    async def smtp_STARTTLS(self, arg):
        # Commands sent in the same packet as STARTTLS would be read as if
        # they came over TLS (CVE-2011-0411 class): refuse the connection.
        if self._reader._buffer:  # noqa: SLF001 - aiosmtpd keeps its reader here too
            log.warning("STARTTLS from %s with pipelined commands; dropped", _client(self.context))
            await self.push("554 5.5.1 Error: commands pipelined after STARTTLS")
            self.transport.close()
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg):
        if not self.context.settings["email.allow_client_auth"]:
            await self.push("502 5.5.1 Authentication is disabled on this server")
            return
        await super().smtp_AUTH(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg):
        """aiosmtpd's DATA, measuring for the chain instead of refusing:
        the octets sent and the longest line. Past the size or line limit
        the rest is read and dropped (memory stays bounded) and the data
        stage's checks refuse with their own replies."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        settings = self.context.settings
        line_limit = settings["email.max_line_length"]
        try:
            measured = await self._read_data(message_size_limit(settings),
                                             None if isinstance(line_limit, str) else line_limit)
        except OSError as error:
            # The scratch file of a large message could not be written: the
            # rest of the data was read and dropped, nothing was accepted.
            log.error("%s: DATA could not be kept on disk: %s", _client(self.context), error)
            self._set_post_data_state()
            await self.push("452 4.3.1 Insufficient system storage" if out_of_space(error)
                            else "451 4.3.0 Error: queue file write error, try again later")
            return
        if measured is None:
            return  # the connection went away
        received, size, longest = measured
        del measured
        self.context.data_size, self.context.longest_line = size, longest
        self.context.data_complete = received is not None
        self.received = received
        self.envelope.content = self.envelope.original_content = \
            received.prefix if received else b""
        # The envelope holds the message now; the handler drops it once the
        # queue has its own copy, so this frame must not keep it alive.
        del received
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)

    async def _read_data(self, size_limit: int | None, line_limit: int | None):
        """(message_data.Received or None past a limit, octets sent, longest
        line), or None when the client went away. The stream is unstuffed
        into a DataSink: memory holds at most its prefix, whatever the size.
        A scratch-file write error is raised once the data is read to its end.

        Read in blocks of whole lines rather than line by line: a line costs
        an await and a dozen Python steps, which made a 100 KiB message slow."""
        sink = message_data.DataSink(self.gateway.spool.tmp)
        size = longest = line = 0   # line: octets of the line not yet ended
        keeping = True
        write_error = None
        carry = b""                 # the start of a line whose CRLF has not come (or a bytearray)
        try:
            while self.transport is not None:
                try:
                    chunk = await self._reader.read(DATA_READ)
                except asyncio.CancelledError:
                    self._writer.close()
                    raise
                if not chunk:
                    return None  # the client went away mid-message: nothing was accepted
                if carry and b"\r\n" not in chunk and len(carry) + len(chunk) < DATA_READ \
                        and not (chunk[:1] == b"\n" and carry[-1:] == b"\r"):
                    # No line can have ended: appended in place, so a client
                    # trickling a line an octet (or a bare LF) at a time costs
                    # no copy of the line and no search of it per packet.
                    carry = carry if isinstance(carry, bytearray) else bytearray(carry)
                    carry += chunk
                    continue
                data = bytes(carry) + chunk if carry else chunk
                at_line_start = line == 0
                block, carry, ended = _data_block(data, at_line_start)
                if ended is not None:
                    # What the client sent after the final dot (pipelined
                    # commands) is read as commands.
                    _unread(self._reader, block[ended + 3:] + carry)
                    block = block[:ended]
                if block:
                    size += len(block)
                    lines = block.split(b"\r\n")
                    if len(lines) == 1:
                        line += len(block)
                    else:
                        longest = max(longest, line + len(lines[0]) + 2,
                                      max(map(len, lines[1:-1]), default=0) + 2)
                        line = len(lines[-1])
                    if keeping and ((size_limit is not None and size > size_limit) or
                                    (line_limit is not None and max(longest, line) > line_limit)):
                        keeping = False
                        sink.discard()
                    if keeping:
                        try:
                            sink.add(_unstuff(block, at_line_start))
                        except OSError as error:
                            keeping, write_error = False, error
                            sink.discard()
                if ended is not None:
                    if write_error is not None:
                        raise write_error
                    return (sink.finish() if keeping else None), size, longest
            return None
        finally:
            sink.discard()  # nothing after finish(); else the scratch file goes

    def _authenticate(self, mechanism, auth_data):
        # The password check is slow on purpose (scrypt); it runs off the
        # event loop in auth_PLAIN/auth_LOGIN below.
        return _PendingCredentials(auth_data.login, auth_data.password)

    async def _finish_auth(self, pending) -> AuthResult:
        if not isinstance(pending, _PendingCredentials):
            return pending
        login = pending.login.decode("utf-8", "replace")
        ctx = self.context
        attempt = await self.gateway.sign_in(ctx.client_ip, login,
                                             pending.password.decode("utf-8", "replace"))
        if attempt.outcome is Outcome.OK:
            self.context.auth_user = login.lower()
            self.context.add_auth_result("auth", "pass", smtp_auth=login.lower())
            log.info("%s: sasl_username=%s", _client(self.context), safe_text(login, 64))
            return AuthResult(success=True, auth_data=LoginPassword(pending.login, b""))
        ctx.auth_failures += 1
        lockout, now = attempt.lockout, self.gateway.limiter.clock()
        message = None
        if attempt.outcome is Outcome.LOCKED:
            log.warning("%s: SASL authentication refused for %r: %s", _client(ctx),
                        safe_text(login, 64), lockout.describe(now))
            message = f"454 4.7.0 Temporary authentication failure: {lockout.describe(now)}"
        else:
            log.warning("%s: SASL authentication failed for %r", _client(ctx), safe_text(login, 64))
            if lockout is not None:
                log.warning("%s: lockout: %s", _client(ctx), lockout.describe(now))
        # The session's own limit is a check of the command stage
        # (auth_failure_limit): asked again now, so the failure that reaches
        # it is answered 421 and the connection closed at once.
        verdict = await self.gateway.handler.decide(self, "command", "AUTH")
        if verdict is not None:
            self.close_after_reply(verdict)
            message = verdict.reply
        return AuthResult(success=False, handled=False, message=message)

    async def auth_PLAIN(self, _, args):
        return await self._finish_auth(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _, args):
        return await self._finish_auth(await super().auth_LOGIN(_, args))


def _client(ctx) -> str:
    if ctx is None:
        return "unknown[unknown]"
    return f"unknown[{ctx.client_ip}]"


def _declared_size(mail_options) -> int | None:
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


class Handler:
    """aiosmtpd handler hooks: run the policy chain at each stage."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway

    async def decide(self, server: GateboxSMTP, stage: str, what: str) -> Verdict | None:
        ctx = server.context
        try:
            verdict = await self.gateway.policy.evaluate(stage, ctx)
        finally:
            if ctx.results:
                self.gateway.count_results(ctx.results)
                ctx.results.clear()
        if verdict is not None:
            self.refused(server, verdict, what)
        return verdict

    def refused(self, server: GateboxSMTP, verdict: Verdict, what: str):
        """The one log line and the counters of a refusal (Postfix's form)."""
        ctx = server.context
        session = server.session
        proto = "ESMTP" if session is not None and session.extended_smtp else "SMTP"
        log.info("NOQUEUE: reject: %s from %s: %s; from=<%s> to=<%s> proto=%s helo=<%s> check=%s",
                 safe_text(what, 32), _client(ctx), verdict.reply, safe_text(ctx.sender),
                 safe_text(ctx.recipient), proto, safe_text(ctx.helo), verdict.check)
        self.gateway.count_refusal(verdict.check)

    async def signatures(self, ctx, message: bytes,
                         received: message_data.Received | None) -> bytes:
        """The header fields the policy's signers put on top of outbound
        mail. A large message is signed whole, read back from its scratch
        file, off the event loop."""
        if not self.gateway.policy.signers:
            return b""
        if received is None or received.path is None:
            return self.signed(ctx, message)
        async with message_data.whole(message, received.path, len(received.prefix)) as full:
            return await asyncio.to_thread(self.signed, ctx, full)

    def signed(self, ctx, message: bytes) -> bytes:
        """The policy's signatures of the message. A signer that fails
        leaves the message unsigned (logged): mail is never refused for a
        signature the box could not make."""
        added = b""
        for signer in self.gateway.policy.signers:
            try:
                added += signer(message, ctx) or b""
            except Exception:
                log.exception("%s: signer %r failed; the message goes unsigned by it",
                              _client(ctx), signer)
        return added

    async def handle_HELO(self, server, session, envelope, hostname):
        server.context.helo = hostname
        verdict = await self.decide(server, "helo", "HELO")
        if verdict is not None:
            server.context.helo = ""
            server.close_after_reply(verdict)
            return verdict.reply
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        server.context.helo = hostname
        verdict = await self.decide(server, "helo", "EHLO")
        if verdict is not None:
            server.context.helo = ""
            server.close_after_reply(verdict)
            return [verdict.reply]
        session.host_name = hostname
        settings = server.context.settings
        extensions = [r for r in responses[1:-1]
                      if not (r.startswith("250-AUTH") and not settings["email.allow_client_auth"])
                      and not r.startswith("250-SIZE")]
        limit = message_size_limit(settings)
        # RFC 1870: the current limit, or SIZE alone for none.
        extensions.insert(0, f"250-SIZE {limit}" if limit is not None else "250-SIZE")
        extensions += ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"]
        return [responses[0]] + extensions + [responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        ctx = server.context
        ctx.begin_transaction(server.gateway.settings)  # each transaction sees current settings
        ctx.sender = "" if address == "<>" else address  # aiosmtpd keeps the null sender's brackets
        ctx.declared_size = _declared_size(mail_options)
        try:
            ctx.queue_free, ctx.queue_capacity = server.gateway.spool.space()
        except OSError:
            ctx.queue_free = ctx.queue_capacity = None  # unknown: DATA's write still tells
        verdict = await self.decide(server, "mail", "MAIL")
        if verdict is not None:
            server.close_after_reply(verdict)
            return verdict.reply
        envelope.mail_from = ctx.sender
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        ctx = server.context
        ctx.recipient = address
        verdict = await self.decide(server, "rcpt", "RCPT")
        if verdict is not None:
            ctx.refused_recipients += 1
            server.close_after_reply(verdict)
            return verdict.reply
        envelope.rcpt_tos.append(address)
        ctx.recipients.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        try:
            return await self._data(server, envelope, server.received)
        finally:
            # A finished session is freed only when the garbage collector
            # next breaks its reference cycles, which an idle server may not
            # do for minutes: it must not keep the message alive meanwhile.
            server.context.message = b""
            server.context.message_file = None
            envelope.content = envelope.original_content = None
            if server.received is not None:
                server.received.discard()  # queued by now, or not wanted
                server.received = None

    async def _data(self, server, envelope, received: message_data.Received | None):
        ctx = server.context
        message = envelope.original_content or b""
        ctx.message = message
        if received is not None:
            ctx.message_file, ctx.message_file_length = received.path, received.size
            ctx.bare_line_endings = received.bare_line_endings
        ctx.add_headers = []
        verdict = await self.decide(server, "data", "DATA")
        if verdict is not None:
            server.close_after_reply(verdict)
            return verdict.reply
        if not ctx.data_complete:
            # Past a limit the data was dropped while it was read; only the
            # chain's size and line checks may answer that. A policy without
            # them is a programming error, never an accept.
            log.error("%s: DATA over its limits passed the policy chain; refused (451)",
                      _client(ctx))
            return "451 4.3.0 Error: local configuration problem, try again later"
        action = scoring.decide(ctx.score, ctx.settings, ctx.spam_policy)
        if ctx.symbols or action.kind != scoring.ACCEPT:
            log.info("%s: score=%.1f action=%s symbols=%s", _client(ctx), action.total,
                     action.kind, ",".join(f"{s.name}({s.score:g})" for s in ctx.symbols) or "-")
        if action.kind == scoring.REJECT:
            verdict = Verdict(550, "5.7.1", f"Message refused as spam ({action.reason})",
                              scoring.REJECT_CHECK)
            self.refused(server, verdict, "DATA")
            return verdict.reply
        if action.kind == scoring.QUARANTINE:
            ctx.quarantine("spam", action.reason)
        message = scoring.mark(message, action, ctx.symbols, ctx.auth_results, ctx.settings,
                               server.hostname, ctx.spam_policy, held=bool(ctx.quarantine_kind))
        if ctx.may_relay and not ctx.quarantine_kind:
            message = await self.signatures(ctx, message, received) + message
        info = summary(message)
        now = time.time()
        tail = None
        if received is not None and received.path is not None:
            tail = FileSpan(received.path, len(received.prefix),
                            received.size - len(received.prefix))
        duplicate_key = None
        if ctx.settings["email.check_duplicate_messages"]:
            duplicate_key = self.gateway.duplicates.key(
                ctx.client_ip, envelope.mail_from or "", envelope.rcpt_tos, info.message_id,
                message, tail.length if tail else 0)
            earlier = self.gateway.duplicates.lookup(duplicate_key, now) if duplicate_key else None
            if earlier:
                log.info("%s: duplicate of %s from %s (client timeout resend); not queued again",
                         earlier, earlier, _client(ctx))
                return f"250 2.0.0 Ok: queued as {earlier}"
        extra = "".join(f"{name}: {value}\r\n" for name, value in ctx.add_headers).encode()
        recipients = list(envelope.rcpt_tos)
        # The checks are done: only the marked copy is needed from here on,
        # and a large message is not held twice while it is written.
        envelope.content = envelope.original_content = None
        ctx.message = b""
        submission = Submission(
            sender=envelope.mail_from or "", recipients=recipients, message=extra + message,
            origin="smtpd", direction="outbound" if ctx.may_relay else "inbound",
            client_address=ctx.client_ip, client_name="", helo=ctx.helo, auth_user=ctx.auth_user,
            received=now,
            body_8bit=not message.isascii() or (received is not None and received.eight_bit),
            trace=lambda qid: _received_header(server, ctx, qid, recipients, now), tail=tail)
        try:
            if ctx.quarantine_kind:
                qid = await self.gateway.quarantine.put_async(
                    submission, ctx.quarantine_kind, ctx.hold_reason, ctx.settings)
            else:
                qid = await submit_async(self.gateway.spool, submission,
                                         self.gateway.on_enqueued, ctx.settings)
        except OSError as error:
            # Never 250 for what is not on disk; the client keeps the message.
            # Logged and counted like a check's refusal, under the name queue_write.
            verdict = (Verdict(452, "4.3.1", "Insufficient system storage", "queue_write")
                       if out_of_space(error) else
                       Verdict(451, "4.3.0", "Error: queue file write error, try again later",
                               "queue_write"))
            self.refused(server, verdict, "DATA")
            return verdict.reply
        if duplicate_key:
            self.gateway.duplicates.remember(duplicate_key, qid, now)
        self.gateway.count("received")
        return f"250 2.0.0 Ok: queued as {qid}"


def _received_header(server, ctx, qid, recipients, now) -> bytes:
    protocol = "ESMTP" if server.session.extended_smtp else "SMTP"
    if server.session.ssl:
        protocol += "S"
    if ctx.auth_user:
        protocol += "A"
    helo = re.sub(r"[^\x21-\x7e]", "?", ctx.helo or "unknown")[:255]
    # The recipient passed recipient_characters; the test stays so that no
    # path around the chain can put a line break into the trace field.
    single = recipients[0] if len(recipients) == 1 else ""
    for_clause = f"\r\n\tfor <{single}>" if single and addresses.is_clean(single) else ""
    return (f"Received: from {helo} (unknown [{ctx.client_ip}])\r\n"
            f"\tby {server.hostname} (gatebox) with {protocol} id {qid}{for_clause};\r\n"
            f"\t{_received_date(int(now))}\r\n").encode("utf-8", "replace")


@functools.lru_cache(maxsize=4)
def _received_date(second: int) -> str:
    # formatdate() looks the local zone up each time; the messages of one
    # second share its answer (it shows no fraction of a second).
    return email.utils.formatdate(second, localtime=True)
