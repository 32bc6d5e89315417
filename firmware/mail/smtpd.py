"""SMTP in: decides and enqueues, never delivers inline.

aiosmtpd speaks the protocol; this module adds what a gateway needs on top:
the policy chain, relay control, per-host connection limits, STARTTLS
injection and bare-LF smuggling defences, duplicate suppression, enhanced
status codes and Postfix-style log lines."""

from __future__ import annotations

import asyncio
import collections
import email.utils
import hashlib
import logging
import re
import threading
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from firmware import __version__, accounts
from firmware.config import UNLIMITED, Store

from . import aiosmtpd_speedups
from .addresses import in_networks
from .headers import summary
from .policy import Context, Policy
from .queue import Envelope, Recipient, Spool, new_queue_id

log = logging.getLogger("gatebox.smtpd")
aiosmtpd_speedups.install()
_PLAIN_PATH = re.compile(r"\s*<([A-Za-z0-9._+=-]{1,64}@[A-Za-z0-9.-]{1,253})>(.*)\Z", re.S)

MAX_RECIPIENTS = 1000
MAX_HOPS = 50
DUPLICATE_WINDOW = 15 * 60
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


class DuplicateFilter:
    """Clients that time out after a minute resend a message the box already
    took. Same client, same Message-ID and same content within the window:
    answer 250 again but keep one copy."""

    def __init__(self, window: float = DUPLICATE_WINDOW):
        self.window = window
        self._seen: collections.OrderedDict = collections.OrderedDict()

    def key(self, client_ip: str, message_id: str, message: bytes):
        if not message_id:
            return None
        return (client_ip, message_id, hashlib.sha256(message).digest())

    def lookup(self, key, now: float):
        while self._seen:
            oldest, (when, _) = next(iter(self._seen.items()))
            if now - when <= self.window:
                break
            self._seen.popitem(last=False)
        found = self._seen.get(key)
        return found[1] if found else None

    def remember(self, key, qid: str, now: float):
        self._seen[key] = (now, qid)


class Gateway:
    """State shared by every SMTP connection of one running box."""

    def __init__(self, *, watcher, spool: Spool, policy: Policy, tls_context,
                 on_enqueued=lambda qid: None, hostname: str | None = None, stats=None):
        self.watcher = watcher
        self.spool = spool
        self.policy = policy
        self.tls_context = tls_context
        self.on_enqueued = on_enqueued
        self.hostname = hostname
        self.connections: collections.Counter = collections.Counter()
        self._auth_local = threading.local()
        self.duplicates = DuplicateFilter()
        self.handler = Handler(self)
        self.stats = stats

    def count(self, field: str):
        if self.stats is not None:
            self.stats.count(field)

    @property
    def settings(self):
        return self.watcher.current

    def protocol_factory(self, port_kind: str):
        def factory():
            return GateboxSMTP(self, port_kind)
        return factory

    async def serve(self, host: str, port: int, port_kind: str):
        loop = asyncio.get_running_loop()
        return await loop.create_server(self.protocol_factory(port_kind), host=host, port=port,
                                        reuse_address=True)

    async def check_password(self, login: str, password: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._check_password, login, password)

    def _check_password(self, login: str, password: str) -> bool:
        # Worker threads get their own database connection; the event loop's
        # connection is never used off its thread.
        store = getattr(self._auth_local, "store", None)
        if store is None:
            store = self._auth_local.store = Store(self.watcher.store.data_dir)
        return accounts.authenticate(store, login, password)


class _PendingCredentials:
    def __init__(self, login: bytes, password: bytes):
        self.login, self.password = login, password


class GateboxSMTP(SMTP):
    """One SMTP connection."""

    def __init__(self, gateway: Gateway, port_kind: str):
        settings = gateway.settings
        self.gateway = gateway
        self.port_kind = port_kind
        self.context: Context | None = None
        self._counted_ip = None
        self._in_helo = False
        super().__init__(
            gateway.handler,
            hostname=gateway.hostname or settings["system.hostname"],
            ident=f"ESMTP gatebox {__version__}",
            tls_context=gateway.tls_context,
            data_size_limit=_size_limit(settings),
            timeout=settings["email.timeout_command_min"] * 60,
            authenticator=lambda *args: None,  # replaced by _authenticate below
            auth_require_tls=True,
            enable_SMTPUTF8=True,
        )

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
                               port_kind=self.port_kind, trusted=trusted)
        # Trusted LAN clients may authenticate without TLS; everyone else needs it.
        self._auth_require_tls = not trusted
        self._counted_ip = peer[0]
        self.gateway.connections[peer[0]] += 1

    def connection_lost(self, error):
        if self._counted_ip is not None:
            counter = self.gateway.connections
            counter[self._counted_ip] -= 1
            if counter[self._counted_ip] <= 0:
                del counter[self._counted_ip]
            log.info("disconnect from %s", _client(self.context))
            self._counted_ip = None
        super().connection_lost(error)

    async def _handle_client(self):
        ctx = self.context
        log.info("connect from %s", _client(ctx))
        verdict = await self.gateway.policy.evaluate("connect", ctx)
        if verdict is None:
            limit = ctx.settings["email.max_connections_per_host"]
            if limit != UNLIMITED and self.gateway.connections[ctx.client_ip] > limit:
                verdict = _Refusal(421, "4.7.0", f"Too many connections from {ctx.client_ip} "
                                                  f"(limit {limit})", "max_connections_per_host")
        if verdict is not None:
            log.info("NOQUEUE: reject: CONNECT from %s: %s; check=%s",
                     _client(ctx), verdict.reply, verdict.check)
            self.gateway.count("rejected")
            await self.push(verdict.reply)
            self.transport.close()
            return
        await super()._handle_client()

    async def push(self, status):
        if isinstance(status, str) and not self._in_helo and not status.startswith("220 "):
            status = with_enhanced_code(status)
        await super().push(status)

    # ---- commands ------------------------------------------------------------
    def _getaddr(self, arg):
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

    def _authenticate(self, mechanism, auth_data):
        # The password check is slow on purpose (scrypt); it runs off the
        # event loop in auth_PLAIN/auth_LOGIN below.
        return _PendingCredentials(auth_data.login, auth_data.password)

    async def _finish_auth(self, pending) -> AuthResult:
        if not isinstance(pending, _PendingCredentials):
            return pending
        login = pending.login.decode("utf-8", "replace")
        ok = await self.gateway.check_password(login, pending.password.decode("utf-8", "replace"))
        if ok:
            self.context.auth_user = login.lower()
            log.info("%s: sasl_username=%s", _client(self.context), login)
            return AuthResult(success=True, auth_data=LoginPassword(pending.login, b""))
        log.warning("%s: SASL authentication failed for %r", _client(self.context), login)
        await asyncio.sleep(1.0)  # slow down guessing
        return AuthResult(success=False, handled=False)

    async def auth_PLAIN(self, _, args):
        return await self._finish_auth(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _, args):
        return await self._finish_auth(await super().auth_LOGIN(_, args))


class _Refusal:
    def __init__(self, code, enhanced, text, check):
        self.code, self.enhanced, self.text, self.check = code, enhanced, text, check

    @property
    def reply(self):
        return f"{self.code} {self.enhanced} {self.text}"


def _size_limit(settings):
    size = settings["email.max_message_size_mb"]
    return None if size == UNLIMITED else size * 1024 * 1024


def _client(ctx) -> str:
    if ctx is None:
        return "unknown[unknown]"
    return f"unknown[{ctx.client_ip}]"


class Handler:
    """aiosmtpd handler hooks: run the policy chain at each stage."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway

    async def _decide(self, server: GateboxSMTP, stage: str, what: str):
        verdict = await self.gateway.policy.evaluate(stage, server.context)
        if verdict is not None:
            ctx = server.context
            log.info("NOQUEUE: reject: %s from %s: %s; from=<%s> to=<%s> helo=<%s> check=%s",
                     what, _client(ctx), verdict.reply, ctx.sender, ctx.recipient,
                     ctx.helo, verdict.check)
            self.gateway.count("rejected")
        return verdict

    async def handle_HELO(self, server, session, envelope, hostname):
        server.context.helo = hostname
        verdict = await self._decide(server, "helo", "HELO")
        if verdict is not None:
            server.context.helo = ""
            return verdict.reply
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        server.context.helo = hostname
        verdict = await self._decide(server, "helo", "EHLO")
        if verdict is not None:
            server.context.helo = ""
            return [verdict.reply]
        session.host_name = hostname
        settings = server.context.settings
        extensions = [r for r in responses[1:-1]
                      if not (r.startswith("250-AUTH") and not settings["email.allow_client_auth"])]
        if not any(r.startswith("250-SIZE") for r in extensions):
            extensions.insert(0, "250-SIZE")  # RFC 1870: no fixed maximum
        extensions += ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"]
        return [responses[0]] + extensions + [responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        ctx = server.context
        ctx.settings = server.gateway.settings  # each transaction sees current settings
        address = "" if address == "<>" else address  # aiosmtpd keeps the null sender's brackets
        ctx.sender, ctx.recipient, ctx.recipients = address, "", []
        verdict = await self._decide(server, "mail", "MAIL")
        if verdict is not None:
            return verdict.reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        ctx = server.context
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Error: too many recipients"
        ctx.recipient = address
        verdict = await self._decide(server, "rcpt", "RCPT")
        if verdict is not None:
            return verdict.reply
        envelope.rcpt_tos.append(address)
        ctx.recipients.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        ctx = server.context
        message = envelope.original_content or b""
        ctx.message = message
        ctx.add_headers = []
        verdict = await self._decide(server, "data", "DATA")
        if verdict is not None:
            return verdict.reply
        info = summary(message)
        if info.received_count >= MAX_HOPS:
            return "554 5.4.6 Too many hops (mail loop?)"
        now = time.time()
        duplicate_key = None
        if ctx.settings["email.check_duplicate_messages"]:
            duplicate_key = self.gateway.duplicates.key(ctx.client_ip, info.message_id, message)
            earlier = self.gateway.duplicates.lookup(duplicate_key, now) if duplicate_key else None
            if earlier:
                log.info("%s: duplicate of %s from %s (client timeout resend); not queued again",
                         earlier, earlier, _client(ctx))
                return f"250 2.0.0 Ok: queued as {earlier}"
        qid = new_queue_id()
        trace = _received_header(server, ctx, qid, envelope.rcpt_tos, now)
        extra = "".join(f"{name}: {value}\r\n" for name, value in ctx.add_headers).encode()
        stored = trace + extra + message
        queued = Envelope(
            id=qid, sender=envelope.mail_from or "",
            recipients=[Recipient(r) for r in envelope.rcpt_tos],
            received=now, client_address=ctx.client_ip, helo=ctx.helo,
            auth_user=ctx.auth_user, direction="outbound" if ctx.may_relay else "inbound",
            size=len(stored), message_id=info.message_id, subject=info.subject,
            header_from=info.header_from, body_8bit=not message.isascii(),
        )
        try:
            await self.gateway.spool.enqueue(queued, stored)
        except OSError as error:
            log.error("%s: cannot write to the queue: %s", qid, error)
            return "451 4.3.0 Error: queue file write error, try again later"
        if duplicate_key:
            self.gateway.duplicates.remember(duplicate_key, qid, now)
        log.info("%s: client=%s%s, message-id=%s", qid, _client(ctx),
                 f", sasl_username={ctx.auth_user}" if ctx.auth_user else "",
                 info.message_id or "<>")
        log.info("%s: from=<%s>, size=%d, nrcpt=%d (queue active)", qid, queued.sender,
                 queued.size, len(queued.recipients))
        self.gateway.count("received")
        self.gateway.on_enqueued(qid)
        return f"250 2.0.0 Ok: queued as {qid}"


def _received_header(server, ctx, qid, recipients, now) -> bytes:
    protocol = "ESMTP" if server.session.extended_smtp else "SMTP"
    if server.session.ssl:
        protocol += "S"
    if ctx.auth_user:
        protocol += "A"
    helo = re.sub(r"[^\x21-\x7e]", "?", ctx.helo or "unknown")[:255]
    for_clause = f"\r\n\tfor <{recipients[0]}>" if len(recipients) == 1 else ""
    return (f"Received: from {helo} (unknown [{ctx.client_ip}])\r\n"
            f"\tby {server.hostname} (gatebox) with {protocol} id {qid}{for_clause};\r\n"
            f"\t{email.utils.formatdate(now, localtime=True)}\r\n").encode("utf-8", "replace")
