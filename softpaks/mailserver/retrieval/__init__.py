"""Mail the box fetches or asks for: Multi-drop (one ISP mailbox for the
domain), Mirrored (each user's ISP mailbox), Remote POP (further mailboxes,
each into one local recipient), and the triggers that make the ISP deliver
by SMTP (ETRN, the mail-bagging finger). Everything fetched goes in through
submit (origin "retrieval"); a message is deleted at the ISP only after it
is durably in the queue."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Account:
    """One mailbox to fetch. `name` keys its state and seen UIDs:
    "multidrop", "mirrored:<user>", "remote:<id>"."""
    name: str
    host: str
    port: int
    protocol: str          # pop3 | imap
    tls: str               # tls | starttls | none
    verify: bool
    login: str
    password: str = field(repr=False, default="")


@dataclass
class AccountResult:
    """What one run did for one account (or trigger), for the log, the
    pages and `gatebox retrieve now`."""
    account: str
    ok: bool
    fetched: int = 0
    left: int = 0             # still at the ISP (per-session limit)
    duplicates: int = 0
    unaddressable: int = 0
    detail: str = ""          # the reply or the error, for the administrator
    queued: list = field(default_factory=list)   # queue ids

    @property
    def summary(self) -> str:
        if not self.ok:
            return f"{self.account}: failed: {self.detail}"
        parts = [f"{self.fetched} fetched"]
        if self.left:
            parts.append(f"{self.left} left for the next run")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate(s) dropped")
        if self.unaddressable:
            parts.append(f"{self.unaddressable} to the unaddressable-mail user")
        text = f"{self.account}: " + ", ".join(parts)
        return text + (f" ({self.detail})" if self.detail else "")


@dataclass
class RetrievalContext:
    """What a run needs: the settings store (its own connection), the queue
    spool and the announce callable (submit's), the settings snapshot and now."""
    store: object
    spool: object
    announce: object
    settings: object
    now: float
