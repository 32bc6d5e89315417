"""The SMTP policy chain: named checks, each bound to a stage of the SMTP
dialogue. A check answers accept (None), tempfail (4xx) or reject (5xx) with
an RFC 3463 enhanced status code, and may add scored symbols to the context;
at the end of DATA the symbols' total decides the action (see scoring.py).
Core and SoftPaks register checks; the name of the check that decided is in
the log line and in its counter.

Stages, in dialogue order:
  connect   a client connected (before the greeting)
  command   before every command line is acted on (per-session limits)
  helo      HELO/EHLO
  mail      MAIL FROM
  rcpt      each RCPT TO
  data      the end of DATA, the whole message at hand

Within a stage checks run by their Order position, then in the order they
were added. A check that raises or overruns its time budget never turns into
an accept or a reject by accident: it follows its declared failure mode,
"tempfail" (451 4.4.3 when DNS failed or a check that asks DNS overran its
budget, else 451 4.3.0; 421 at connect) or
"skip" (the chain goes on and the context gets a CHECKNAME_ERROR symbol of
score 0), and the failure is logged as "check NAME failed"."""

from __future__ import annotations

import asyncio
import collections
import enum
import inspect
import logging
import re
from dataclasses import dataclass, field

from .resolver import DnsFailure

STAGES = ("connect", "command", "helo", "mail", "rcpt", "data")
TRANSACTION_STAGES = ("mail", "rcpt", "data")
ON_ERROR = ("tempfail", "skip")
CHECK_SECONDS = 10.0

_CHECK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
_SYMBOL_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}\Z")

log = logging.getLogger("gatebox.smtpd")


class Order(enum.IntEnum):
    """Named positions in a stage. Leave gaps: a SoftPak may place a check
    between two positions (Order.RELAY + 1)."""
    FIRST = 0           # the door itself: server disabled
    LIMITS = 100        # resource limits: connections, commands, recipients, size, lines, hops
    AUTH = 200          # authentication requirements (submission port)
    SYNTAX = 300        # protocol and address syntax, smuggling
    RELAY = 400         # relay control
    LOCAL = 500         # local recipients and accounts (Mail Server SoftPak)
    REPUTATION = 600    # the client's reputation: DNSBL, PTR, SPF
    CONTENT = 700       # the message's content: anti-spam, anti-virus
    LAST = 1000


@dataclass(frozen=True)
class Verdict:
    code: int
    enhanced: str
    text: str
    check: str = ""

    @property
    def reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"

    @property
    def closes_connection(self) -> bool:
        return self.code == 421


def reject(enhanced: str, text: str, code: int = 550) -> Verdict:
    return Verdict(code, enhanced, text)


def tempfail(enhanced: str, text: str, code: int = 450) -> Verdict:
    return Verdict(code, enhanced, text)


@dataclass(frozen=True)
class Symbol:
    """A scored finding. Names are upper-case tokens (they go into headers
    unquoted); the detail is free text and is sanitised where it is shown."""
    name: str
    score: float
    detail: str = ""
    stage: str = ""

    def __post_init__(self):
        if not _SYMBOL_NAME.match(self.name):
            raise ValueError(f"symbol name {self.name!r} must be upper-case letters, digits and _")


@dataclass(frozen=True)
class AuthResult:
    """One RFC 8601 resinfo: method=result and its properties, e.g.
    AuthResult("auth", "pass", (("smtp.auth", "alice"),))."""
    method: str
    result: str
    properties: tuple = ()
    stage: str = ""


@dataclass
class Context:
    """What a check may look at. Fields fill in as the dialogue proceeds."""
    settings: object                    # config Snapshot
    client_ip: str
    local_ip: str = ""
    port_kind: str = "smtp"             # smtp | submission
    trusted: bool = False
    auth_user: str = ""
    resolver: object = None             # the process's Resolver, for checks that ask DNS
    # connect
    host_connections: int = 0           # open connections from this client, this one included
    total_connections: int = 0          # open connections from everyone
    # command
    command: str = ""                   # upper-case verb of the line being handled
    command_known: bool = True          # False for a verb the server does not implement
    command_counts: collections.Counter = field(default_factory=collections.Counter)  # "*": unknown
    auth_failures: int = 0              # failed (or refused) AUTH commands this session
    refused_recipients: int = 0         # RCPT commands refused this session
    helo: str = ""
    # transaction
    sender: str = ""
    declared_size: int | None = None    # MAIL FROM ... SIZE=
    queue_free: int | None = None       # octets free for the queue at MAIL; None: unknown
    queue_capacity: int | None = None   # the size of the queue's file system
    recipients: list = field(default_factory=list)
    recipient: str = ""                 # the one being checked at rcpt
    message: bytes = b""                # at data; empty when it was too big to keep
    # At data, for a message larger than message_data.PREFIX: the file that
    # holds all of it, `message` then holding only its first PREFIX octets.
    message_file: object = None
    message_file_length: int = 0
    # Counted on the DATA stream (smtpd); None: `message` is all there is to count.
    bare_line_endings: bool | None = None
    data_size: int = 0                  # octets the client sent in DATA
    longest_line: int = 0               # longest DATA line, CRLF included
    data_complete: bool = True          # False: past a limit, the data was not kept
    add_headers: list = field(default_factory=list)  # (name, value) a check wants added
    symbols: list = field(default_factory=list)
    auth_results: list = field(default_factory=list)
    # scoring.SpamPolicy a check set for this transaction (the Anti-Spam
    # SoftPak, from the recipients' filter level and action); None: the
    # email.spam_*_score settings decide.
    spam_policy: object = None
    hold_reason: str = ""               # set when the message is to be held (quarantine)
    quarantine_kind: str = ""           # virus | spam, with hold_reason: see quarantine()
    # async callable(Submission) -> queue id: how a check puts mail it writes
    # itself (a virus notice) through the one way into the queue; None where
    # there is no queue (the Test box).
    submit: object = None
    # Set at each RCPT by the Anti-Spam lists when a whitelist entry matched
    # this client, sender or recipient: the filtering layers after it skip.
    whitelisted: bool = False
    stage: str = ""                     # the stage being evaluated
    # (check, result) -> times, for the per-result counters (e.g. spf=softfail);
    # smtpd hands them to the statistics after each stage.
    results: collections.Counter = field(default_factory=collections.Counter)

    @property
    def may_relay(self) -> bool:
        return self.trusted or bool(self.auth_user)

    @property
    def message_length(self) -> int:
        return self.message_file_length if self.message_file else len(self.message)

    @property
    def score(self) -> float:
        return round(sum(s.score for s in self.symbols), 3)

    def add_symbol(self, name: str, score: float, detail: str = "") -> Symbol:
        symbol = Symbol(name, float(score), detail, self.stage)
        self.symbols.append(symbol)
        return symbol

    def count_result(self, check: str, result: str):
        self.results[(check, result)] += 1

    def add_auth_result(self, method: str, result: str, **properties) -> AuthResult:
        entry = AuthResult(method, result, tuple((k.replace("_", "."), v)
                                                 for k, v in properties.items()), self.stage)
        self.auth_results.append(entry)
        return entry

    def quarantine(self, kind: str, reason: str):
        """The message is to be held in the quarantine instead of queued; the
        client still gets 250. The first check to ask decides the reason."""
        if not self.quarantine_kind:
            self.quarantine_kind, self.hold_reason = kind, reason

    def begin_transaction(self, settings):
        """MAIL FROM starts afresh; what connect and HELO found stays."""
        self.settings = settings
        self.sender, self.recipient, self.recipients = "", "", []
        self.declared_size = None
        self.message, self.data_size, self.longest_line = b"", 0, 0
        self.message_file, self.message_file_length, self.bare_line_endings = None, 0, None
        self.data_complete = True
        self.add_headers, self.hold_reason, self.quarantine_kind = [], "", ""
        self.whitelisted = False
        self.spam_policy = None
        self.symbols = [s for s in self.symbols if s.stage not in TRANSACTION_STAGES]
        self.auth_results = [a for a in self.auth_results if a.stage not in TRANSACTION_STAGES]


@dataclass(frozen=True)
class Check:
    name: str
    stage: str
    run: object          # callable(Context) -> Verdict | None, sync or async
    order: int = Order.CONTENT
    on_error: str = "tempfail"
    budget: float = CHECK_SECONDS   # seconds an async check may take
    asks_dns: bool = False          # an overrun then means DNS did not answer (4.4.3)

    def __post_init__(self):
        if not _CHECK_NAME.match(self.name):
            raise ValueError(f"check name {self.name!r} must be lower-case letters, digits and _")
        if self.stage not in STAGES:
            raise ValueError(f"check {self.name}: unknown stage {self.stage!r}")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"check {self.name}: on_error must be one of {', '.join(ON_ERROR)}")

    @property
    def error_symbol(self) -> str:
        return f"{self.name.upper()}_ERROR"


class Policy:
    """The checks, and the signers smtpd applies to outbound mail once it is
    accepted: callables signer(message: bytes, ctx: Context) -> bytes, header
    fields to put on top (b"" for none), e.g. a DKIM-Signature."""

    def __init__(self, checks=(), signers=()):
        self.signers = list(signers)
        self.checks: list[Check] = []
        self._by_stage: dict = {stage: [] for stage in STAGES}
        for check in checks:
            self.add(check)

    def add(self, check: Check):
        if not isinstance(check, Check):
            raise TypeError(f"{check!r} is not a Check")
        self.checks.append(check)
        self.checks.sort(key=lambda c: c.order)  # stable: equal positions keep their order
        self._by_stage = {stage: [c for c in self.checks if c.stage == stage] for stage in STAGES}

    def for_stage(self, stage: str) -> list[Check]:
        return self._by_stage[stage]

    async def evaluate(self, stage: str, context: Context) -> Verdict | None:
        context.stage = stage
        for check in self._by_stage[stage]:
            try:
                verdict = check.run(context)
                if inspect.isawaitable(verdict):
                    # asyncio.timeout, not wait_for: no extra task per check and message.
                    async with asyncio.timeout(check.budget):
                        verdict = await verdict
            except asyncio.TimeoutError:
                failed = self._failed(check, context, f"timed out after {check.budget:g}s",
                                      dns=check.asks_dns)
            except DnsFailure as error:
                failed = self._failed(check, context, str(error), dns=True)
            except Exception as error:
                failed = self._failed(check, context, f"{type(error).__name__}: {error}", dns=False)
            else:
                if verdict is not None:
                    return Verdict(verdict.code, verdict.enhanced, verdict.text, check.name)
                continue
            if failed is not None:
                return failed
        return None

    def _failed(self, check: Check, context: Context, why: str, dns: bool) -> Verdict | None:
        log.warning("warning: check %s failed: %s (on_error=%s)", check.name, why, check.on_error)
        if check.on_error == "skip":
            context.add_symbol(check.error_symbol, 0.0, why)
            return None
        enhanced = "4.4.3" if dns else "4.3.0"
        text = ("Temporary DNS failure, try again later" if dns
                else "Temporary local problem, try again later")
        return Verdict(421 if context.stage == "connect" else 451, enhanced, text, check.name)
