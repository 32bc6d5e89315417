"""The SMTP policy chain: named checks, each bound to a stage of the SMTP
dialogue, answering accept (None), tempfail (4xx) or reject (5xx) with an
RFC 3463 enhanced status code. Core and SoftPaks register checks; the name of
the check that decided appears in the log line."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field

STAGES = ("connect", "helo", "mail", "rcpt", "data")

log = logging.getLogger("gatebox.smtpd")


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
    def is_temporary(self) -> bool:
        return 400 <= self.code < 500


def reject(enhanced: str, text: str, code: int = 550) -> Verdict:
    return Verdict(code, enhanced, text)


def tempfail(enhanced: str, text: str, code: int = 450) -> Verdict:
    return Verdict(code, enhanced, text)


@dataclass
class Context:
    """What a check may look at. Fields fill in as the dialogue proceeds."""
    settings: object                    # config Snapshot
    client_ip: str
    local_ip: str = ""
    port_kind: str = "smtp"             # smtp | submission
    trusted: bool = False
    auth_user: str = ""
    helo: str = ""
    sender: str = ""
    recipients: list = field(default_factory=list)
    recipient: str = ""                 # the one being checked at rcpt
    message: bytes = b""                # at data
    add_headers: list = field(default_factory=list)  # (name, value) a check wants added

    @property
    def may_relay(self) -> bool:
        return self.trusted or bool(self.auth_user)


@dataclass(frozen=True)
class Check:
    name: str
    stage: str
    run: object          # callable(Context) -> Verdict | None, sync or async
    order: int = 100


class Policy:
    def __init__(self, checks=()):
        self.checks: list[Check] = []
        for check in checks:
            self.add(check)

    def add(self, check: Check):
        if check.stage not in STAGES:
            raise ValueError(f"check {check.name}: unknown stage {check.stage!r}")
        self.checks.append(check)
        self.checks.sort(key=lambda c: c.order)

    async def evaluate(self, stage: str, context: Context) -> Verdict | None:
        for check in self.checks:
            if check.stage != stage:
                continue
            verdict = check.run(context)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict is not None:
                return Verdict(verdict.code, verdict.enhanced, verdict.text, check.name)
        return None
