"""What a diagnostic check is handed (Context) and what it answers (Outcome,
then Result once the runner has timed it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)

DEFAULT_LIMIT_SECONDS = 10.0


@dataclass(frozen=True)
class Context:
    """settings: the values of a settings snapshot (key -> value).
    resolver: firmware.mail.resolver.Resolver, so the box's DNS settings count.
    public_address: the box's Internet address when the administrator knows it;
    otherwise the A record of the Host Name is taken, if there is one.
    cafile: extra CA certificates trusted for the ISP's TLS (an ISP with a
    private CA); the system's are always trusted."""
    settings: Mapping
    data_dir: Path
    resolver: object
    public_address: str = ""
    cafile: str | None = None

    def __getitem__(self, key):
        return self.settings[key]


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str
    fix: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")


def passed(reason: str) -> Outcome:
    return Outcome(PASS, reason)


def warned(reason: str, fix: str) -> Outcome:
    return Outcome(WARN, reason, fix)


def failed(reason: str, fix: str) -> Outcome:
    return Outcome(FAIL, reason, fix)


@dataclass(frozen=True)
class Check:
    name: str            # stable id: "dns_mx", "lan_smtp" ...
    title: str           # what the page and the CLI call it
    probe: Callable[[Context], Outcome]
    limit: float = DEFAULT_LIMIT_SECONDS


@dataclass(frozen=True)
class Result:
    name: str
    title: str
    status: str
    reason: str
    fix: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "status": self.status,
                "reason": self.reason, "fix": self.fix, "seconds": round(self.seconds, 3)}
