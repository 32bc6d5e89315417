"""What a message's symbols lead to at the end of DATA, and the header
fields that say what was checked.

The total of the symbols' scores is held against three thresholds, highest
first: reject (550 5.7.1), quarantine, tag. A threshold that is off (None,
the default until the Anti-Spam SoftPak sets it) never applies, so with all
three off every message is accepted as it came.

Quarantine: the message is tagged as for "tag" and held in the quarantine
store (firmware.mail.quarantine, Email Server > Quarantine), where the
administrator can release or delete it.

Every accepted message gets an RFC 8601 Authentication-Results field for the
authentication checks that ran ("none" when none did) and one
X-Gatebox-Checks field listing the symbols and the total. Fields of those
names that claim to be ours, and any X-Spam-* and X-Virus-Scanned fields
(the Anti-Virus check's verdict), are removed from what
the client sent, so a sender cannot forge them (RFC 8601 section 5)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .headers import field, safe_text, with_subject_prefix, without_fields

ACCEPT, TAG, QUARANTINE, REJECT = "accept", "tag", "quarantine", "reject"
THRESHOLDS = ((REJECT, "email.spam_reject_score"),
              (QUARANTINE, "email.spam_quarantine_score"),
              (TAG, "email.spam_tag_score"))
SPAM_PREFIX = "[SPAM] "
CHECKS_FIELD = "X-Gatebox-Checks"
AUTH_RESULTS_FIELD = "Authentication-Results"
REJECT_CHECK = "spam_score"   # the name refusals by score are logged and counted under

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-./=?^_`{|}~@]{1,128}\Z")


@dataclass(frozen=True)
class SpamPolicy:
    """Thresholds for one transaction, in place of the email.spam_*_score
    settings: what a filter level and Filter Match Action (Anti-Spam) come
    to for the message's recipients. None turns a threshold off.
    tag_subject False keeps the subject as it is (the X-Spam fields are
    still added)."""
    tag: float | None = None
    quarantine: float | None = None
    reject: float | None = None
    tag_subject: bool = True
    name: str = ""                       # where it came from, for the log

    def threshold(self, kind: str) -> float | None:
        return {REJECT: self.reject, QUARANTINE: self.quarantine, TAG: self.tag}[kind]


@dataclass(frozen=True)
class Action:
    kind: str
    total: float
    threshold: float | None = None

    @property
    def reason(self) -> str:
        if self.threshold is None:
            return f"score {self.total:.1f}"
        return f"spam score {self.total:.1f} >= {self.threshold:.1f} ({self.kind} score)"


def _thresholds(settings, policy: SpamPolicy | None):
    if policy is not None:
        return [(kind, policy.threshold(kind)) for kind, _ in THRESHOLDS]
    return [(kind, settings[key]) for kind, key in THRESHOLDS]


def decide(total: float, settings, policy: SpamPolicy | None = None) -> Action:
    for kind, threshold in _thresholds(settings, policy):
        if threshold is not None and total >= threshold:
            return Action(kind, total, threshold)
    return Action(ACCEPT, total)


def required_score(settings, policy: SpamPolicy | None = None) -> float | None:
    """The score from which mail counts as spam: the lowest threshold set."""
    values = [t for _, t in _thresholds(settings, policy) if t is not None]
    return min(values) if values else None


def authserv_id(hostname: str) -> str:
    name = safe_text(hostname, 253).replace(" ", "")
    return name if _TOKEN.match(name) else "gatebox"


def pvalue(value: str) -> str:
    """An RFC 8601 property value: a token when it can be one, else a
    quoted-string of sanitised text."""
    text = safe_text(value, 128)
    if _TOKEN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authentication_results(hostname: str, results) -> str:
    if not results:
        return f"{authserv_id(hostname)}; none"
    parts = []
    for result in results:
        props = "".join(f" {name}={pvalue(value)}" for name, value in result.properties)
        parts.append(f"{result.method}={result.result}{props}")
    return f"{authserv_id(hostname)}; " + ";\r\n\t".join(parts)


def checks_summary(symbols, total: float) -> str:
    listed = ", ".join(f"{s.name}({s.score:.1f})" for s in symbols)
    return f"total={total:.1f}" + (f"; {listed}" if listed else "")


def spam_fields(action: Action, symbols, settings,
                policy: SpamPolicy | None = None) -> list[tuple[str, str]]:
    required = required_score(settings, policy)
    tests = ",".join(s.name for s in symbols) or "none"
    report = "; ".join(f"{s.name}({s.score:.1f}) {safe_text(s.detail, 120)}".strip()
                       for s in symbols) or "none"
    return [
        ("X-Spam-Flag", "YES"),
        ("X-Spam-Score", f"{action.total:.1f}"),
        ("X-Spam-Status", f"Yes, score={action.total:.1f} "
                          f"required={required if required is not None else 0:.1f} tests={tests}"),
        ("X-Spam-Report", safe_text(report, 900)),
    ]


def _ours(hostname: str):
    ours = authserv_id(hostname).lower()

    def drop(name: str, value: str) -> bool:
        if name.startswith("x-spam-") or name in (CHECKS_FIELD.lower(), "x-virus-scanned"):
            return True
        if name == AUTH_RESULTS_FIELD.lower():
            return value.split(";", 1)[0].strip().lower() == ours
        return False
    return drop


def mark(message: bytes, action: Action, symbols, auth_results, settings, hostname: str,
         policy: SpamPolicy | None = None, held: bool = False) -> bytes:
    """The message as it is to be queued: forged fields removed, the subject
    tagged when the action says so, and the fields this module adds on top.
    A quarantined message keeps its subject, so that a release delivers it
    as it came; its X-Spam fields are added, for the quarantine's report.
    held: another check quarantines it (a virus, a DMARC policy), whatever
    the score's action is: it keeps its subject too."""
    message = without_fields(message, _ours(hostname))
    added = [(AUTH_RESULTS_FIELD, authentication_results(hostname, auth_results)),
             (CHECKS_FIELD, checks_summary(symbols, action.total))]
    if action.kind in (TAG, QUARANTINE):
        if action.kind == TAG and not held and (policy is None or policy.tag_subject):
            message = with_subject_prefix(message, SPAM_PREFIX)
        added += spam_fields(action, symbols, settings, policy)
    return b"".join(_field_bytes(name, value) for name, value in added) + message


def _field_bytes(name: str, value: str) -> bytes:
    if "\r\n" in value:  # already folded (Authentication-Results)
        return f"{name}: {value}\r\n".encode("ascii", "replace")
    return field(name, value)
