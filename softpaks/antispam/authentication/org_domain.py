"""Organizational domains (RFC 7489 section 3.2) from the Public Suffix
List, which Debian's publicsuffix package keeps up to date on the box.

The list is read once, on first use. Without it (a box built without the
package) every domain's organizational domain is its last two labels, which
is right for example.com and wrong for example.co.uk: logged once, since
relaxed alignment is then looser or stricter than it should be."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

PSL_PATH = Path("/usr/share/publicsuffix/public_suffix_list.dat")
MAX_LABELS = 127

log = logging.getLogger("gatebox.antispam")


class SuffixList:
    def __init__(self, rules=(), wildcards=(), exceptions=()):
        self.rules = frozenset(rules)
        self.wildcards = frozenset(wildcards)       # "ck" for "*.ck"
        self.exceptions = frozenset(exceptions)     # "www.ck" for "!www.ck"

    @classmethod
    def parse(cls, text: str) -> "SuffixList":
        rules, wildcards, exceptions = set(), set(), set()
        for line in text.splitlines():
            rule = line.strip().split(" ", 1)[0].lower()
            if not rule or rule.startswith("//"):
                continue
            rule = _ascii(rule)
            if rule is None:
                continue
            if rule.startswith("!"):
                exceptions.add(rule[1:])
            elif rule.startswith("*."):
                wildcards.add(rule[2:])
            else:
                rules.add(rule)
        return cls(rules, wildcards, exceptions)

    def suffix_length(self, labels: list[str]) -> int:
        """How many of the last labels are the public suffix (at least one:
        the PSL algorithm's implicit "*" rule)."""
        longest = 1
        for count in range(1, len(labels) + 1):
            name = ".".join(labels[-count:])
            if name in self.exceptions:
                return count - 1
            if name in self.rules:
                longest = max(longest, count)
            if count < len(labels) and name in self.wildcards:
                longest = max(longest, count + 1)
        return longest

    def organizational(self, domain: str) -> str:
        labels = domain.lower().rstrip(".").split(".")[-MAX_LABELS:]
        keep = min(len(labels), self.suffix_length(labels) + 1)
        return ".".join(labels[-keep:])


def _ascii(rule: str) -> str | None:
    if rule.isascii():
        return rule
    prefix = ""
    for mark in ("!", "*."):
        if rule.startswith(mark):
            prefix, rule = mark, rule[len(mark):]
    try:
        return prefix + rule.encode("idna").decode("ascii")
    except UnicodeError:
        return None


_loaded: SuffixList | None = None
_lock = threading.Lock()


def suffix_list(path: Path = PSL_PATH) -> SuffixList:
    global _loaded
    with _lock:
        if _loaded is None:
            try:
                _loaded = SuffixList.parse(path.read_text(encoding="utf-8"))
            except OSError as error:
                log.warning("warning: no Public Suffix List (%s): organizational domains are "
                            "taken as the last two labels", error)
                _loaded = SuffixList()
        return _loaded


def organizational_domain(domain: str) -> str:
    return suffix_list().organizational(domain)
