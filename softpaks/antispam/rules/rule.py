"""What a content rule is: a name (the symbol it adds), a score, a sentence
for the administrator, and a test over the message that returns what fired
(the symbol's detail) or None. The rule sets are tables of these, so the
Rules page lists exactly what runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..message_text import CONTENT_PREFIX, MessageView, parse

MAX_DETAIL = 160
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class Message:
    """A message as the rules see it: the parsed view, the header block as
    it came (strict-MIME rules look at octets the parser smooths over) and
    the time of receipt (the Date rules compare with it)."""
    view: MessageView
    raw_headers: bytes
    now: float

    @classmethod
    def of(cls, message: bytes, now: float, view: MessageView | None = None) -> "Message":
        prefix = message[:CONTENT_PREFIX]
        end = _HEADER_END.search(prefix)
        return cls(view if view is not None else parse(prefix),
                   prefix[:end.start()] if end else prefix, now)


@dataclass(frozen=True)
class Rule:
    name: str
    score: float
    description: str
    test: Callable[[Message], str | None]

    def run(self, message: Message) -> str | None:
        found = self.test(message)
        if found is None:
            return None
        return _short(found)


@dataclass(frozen=True)
class Hit:
    name: str
    score: float
    detail: str


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL - 3] + "..."


def run_rules(rules, message: Message) -> list[Hit]:
    hits = []
    for rule in rules:
        detail = rule.run(message)
        if detail is not None:
            hits.append(Hit(rule.name, rule.score, detail))
    return hits


def quoted(text: str, limit: int = 60) -> str:
    """A bit of the message, for a detail: one line, cut short."""
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[:limit] + "...")
