"""The Custom filter: the administrator's own rules. Each looks in one place
- a named header (Subject, X-Mailer, ...),
- any header ("Name: value" of each), or
- the body (the text parts and the text of the HTML parts, decoded),
for a pattern, either
- a substring, case-insensitive, or
- a regular expression (case-insensitive too; (?-i:...) for exact case),
checked when saved (regex_guard: syntax, and patterns that could hold the
server on hostile mail are refused),
and gives a score (-100 to 100) or the direct action "spam" (a score of
SPAM_SCORE, as GTUBE: spam at every level).

A rule that fires adds the symbol CUSTOM_RULE_<id>. Ids are never reused, so
a symbol in an old report still names the rule that fired (or none).
Matching reads at most BODY_LIMIT characters of the body and HEADER_LIMIT
of a header; regular expressions run on pieces of at most regex_guard.LINE
characters, and all of a message's regex matching stops after
MATCH_SECONDS (the symbol CUSTOM_RULES_PARTIAL says so)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from firmware.config import transaction

from .regex_guard import UnsafePattern, compile_safe, pieces
from .rule import Hit, Message, quoted

TARGETS = (("header", "A header"), ("headers", "Any header"), ("body", "The body"))
KINDS = (("substring", "Contains (any case)"), ("regex", "Regular expression"))
SPAM = "spam"
SPAM_SCORE = 1000.0
MAX_SCORE = 100.0
MAX_DESCRIPTION = 200
MAX_RULES = 500
BODY_LIMIT = 256 * 1024
HEADER_LIMIT = 4096
MATCH_SECONDS = 0.25
PARTIAL_SYMBOL = "CUSTOM_RULES_PARTIAL"
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")


class CustomRuleError(ValueError):
    """A rule refused; `field` names the form field it is about."""

    def __init__(self, field: str, text: str):
        super().__init__(text)
        self.field = field


@dataclass(frozen=True)
class CustomRule:
    id: int
    target: str
    header: str
    kind: str
    pattern: str
    score: float
    spam: bool
    description: str = ""
    added: float = 0.0

    @property
    def symbol(self) -> str:
        return f"CUSTOM_RULE_{self.id}"

    @property
    def effective_score(self) -> float:
        return SPAM_SCORE if self.spam else self.score

    @property
    def where(self) -> str:
        if self.target == "header":
            return f"header {self.header}"
        return "any header" if self.target == "headers" else "body"

    @property
    def action(self) -> str:
        return "spam" if self.spam else f"score {self.score:g}"

    def summary(self) -> str:
        how = "matches" if self.kind == "regex" else "contains"
        return f"{self.where} {how} {self.pattern!r}"


def _m5_custom_rules(db):
    # AUTOINCREMENT: ids of removed rules are not given again (see above).
    db.execute("""CREATE TABLE IF NOT EXISTS antispam_custom_rules (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target TEXT NOT NULL, header TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL,
        pattern TEXT NOT NULL, score REAL NOT NULL DEFAULT 0, spam INTEGER NOT NULL DEFAULT 0,
        description TEXT NOT NULL DEFAULT '', added REAL NOT NULL)""")


MIGRATIONS = [(5, _m5_custom_rules)]


# ---- validation ----------------------------------------------------------------------------
def _clean(text, limit: int) -> str:
    return " ".join(str(text or "").split())[:limit]


def parse_action(text) -> tuple[float, bool]:
    """(score, spam) from "spam" or a number."""
    value = str(text if text is not None else "").strip().lower()
    if value == SPAM:
        return 0.0, True
    try:
        score = float(value)
    except ValueError:
        raise CustomRuleError("action", f"'{value[:20]}': give a score from -{MAX_SCORE:g} to "
                                        f"{MAX_SCORE:g}, or 'spam'") from None
    if not -MAX_SCORE <= score <= MAX_SCORE or score != score:
        raise CustomRuleError("action", f"a score is from -{MAX_SCORE:g} to {MAX_SCORE:g}; "
                                        "'spam' marks the message as spam at every level")
    return round(score, 2), False


def validate(target, header, kind, pattern, action, description="") -> CustomRule:
    """A rule as it would be stored (id 0), or CustomRuleError naming the field."""
    target = str(target or "").strip().lower()
    if target not in dict(TARGETS):
        raise CustomRuleError("target", "look in a header, any header or the body")
    header = str(header or "").strip().rstrip(":").strip()
    if target == "header":
        if not _HEADER_NAME.match(header):
            raise CustomRuleError("header", "give the header's name, such as Subject or X-Mailer")
    else:
        header = ""
    kind = str(kind or "").strip().lower()
    if kind not in dict(KINDS):
        raise CustomRuleError("kind", "a pattern is a substring or a regular expression")
    pattern = str(pattern or "")
    if "\n" in pattern or "\r" in pattern:
        raise CustomRuleError("pattern", "a pattern is one line")
    if kind == "substring":
        pattern = pattern.strip()
        if not pattern:
            raise CustomRuleError("pattern", "give the text to look for")
        if len(pattern) > 256:
            raise CustomRuleError("pattern", "a substring is at most 256 characters")
    else:
        try:
            compiled = compile_safe(pattern)
        except UnsafePattern as error:
            raise CustomRuleError("pattern", str(error)) from None
        if compiled.search("") is not None:
            raise CustomRuleError("pattern", "this pattern matches an empty text, so every "
                                             "message: make it look for something")
    score, spam = parse_action(action)
    return CustomRule(0, target, header, kind, pattern, score, spam,
                      _clean(description, MAX_DESCRIPTION))


# ---- storage -------------------------------------------------------------------------------
_COLUMNS = "id, target, header, kind, pattern, score, spam, description, added"


def _from_row(row) -> CustomRule:
    rule_id, target, header, kind, pattern, score, spam, description, added = row
    return CustomRule(int(rule_id), str(target), str(header), str(kind), str(pattern),
                      float(score), bool(spam), str(description), float(added))


def rules(store) -> list[CustomRule]:
    return [_from_row(row) for row in
            store.db.execute(f"SELECT {_COLUMNS} FROM antispam_custom_rules ORDER BY id")]


def add(store, target, header, kind, pattern, action, description="",
        actor: str = "system") -> CustomRule:
    made = validate(target, header, kind, pattern, action, description)
    with transaction(store.db):
        count = store.db.execute("SELECT COUNT(*) FROM antispam_custom_rules").fetchone()[0]
        if count >= MAX_RULES:
            raise CustomRuleError("pattern", f"at most {MAX_RULES} custom rules")
        added = time.time()
        cursor = store.db.execute(
            "INSERT INTO antispam_custom_rules(target, header, kind, pattern, score, spam, "
            "description, added) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
            [made.target, made.header, made.kind, made.pattern, made.score, int(made.spam),
             made.description, added])
        made = CustomRule(cursor.lastrowid, made.target, made.header, made.kind, made.pattern,
                          made.score, made.spam, made.description, added)
        _record(store, actor, f"add custom rule {made.id}: {made.summary()}, {made.action}")
    return made


def remove(store, rule_id, actor: str = "system") -> CustomRule:
    try:
        number = int(str(rule_id).strip().upper().removeprefix("CUSTOM_RULE_"))
    except ValueError:
        raise CustomRuleError("id", f"'{str(rule_id)[:20]}' is not a rule number") from None
    with transaction(store.db):
        row = store.db.execute(f"SELECT {_COLUMNS} FROM antispam_custom_rules WHERE id = ?",
                               [number]).fetchone()
        if row is None:
            raise CustomRuleError("id", f"there is no custom rule {number}")
        gone = _from_row(row)
        store.db.execute("DELETE FROM antispam_custom_rules WHERE id = ?", [number])
        _record(store, actor, f"remove custom rule {gone.id}: {gone.summary()}")
    return gone


def _record(store, actor: str, what: str):
    """Audited; the settings generation moves so running smtpd reads the rules again."""
    store.audit(actor, what)
    store._bump_generation()


# ---- matching ------------------------------------------------------------------------------
class Compiled:
    """The rules ready to match: substrings folded, patterns compiled. A
    stored pattern is compiled again without the probe (it passed when
    saved); one that no longer compiles (a database edited by hand) is left
    out rather than breaking the check."""

    def __init__(self, found: list[CustomRule]):
        self.rules: list[tuple[CustomRule, object]] = []
        for rule in found:
            if rule.kind == "regex":
                try:
                    matcher = re.compile(rule.pattern, re.IGNORECASE)
                except (re.error, OverflowError, RecursionError):
                    continue
            else:
                matcher = rule.pattern.casefold()
            self.rules.append((rule, matcher))

    def match(self, message: Message, clock=time.perf_counter) -> list[Hit]:
        view = message.view
        body = (view.text + "\n" + view.html_text)[:BODY_LIMIT]
        folded_body = None
        hits = []
        out_of_time = False
        deadline = clock() + MATCH_SECONDS
        for rule, matcher in self.rules:
            if rule.target == "body":
                texts = [("body", body)]
            elif rule.target == "header":
                texts = [(rule.header, value[:HEADER_LIMIT]) for value in view.header_all(rule.header)]
            else:
                texts = [(name, f"{name}: {value}"[:HEADER_LIMIT]) for name, value in view.headers]
            if rule.kind == "substring":
                if rule.target == "body":
                    folded_body = body.casefold() if folded_body is None else folded_body
                    found = "body" if matcher in folded_body else None
                else:
                    found = next((where for where, text in texts if matcher in text.casefold()),
                                 None)
                shown = rule.pattern if found else None
            elif out_of_time:
                continue
            else:
                found, shown = self._search(matcher, texts, deadline, clock)
                if found == PARTIAL_SYMBOL:
                    # Substring rules still run: they cost what the text's length does.
                    hits.append(Hit(PARTIAL_SYMBOL, 0.0, f"regular expressions stopped after "
                                                         f"{MATCH_SECONDS:g}s at {rule.symbol}"))
                    out_of_time = True
                    continue
            if found:
                hits.append(Hit(rule.symbol, rule.effective_score,
                                f"{rule.description or rule.summary()}: {quoted(shown, 40)} "
                                f"in {found}"[:160]))
        return hits

    @staticmethod
    def _search(matcher: re.Pattern, texts, deadline: float, clock):
        for where, text in texts:
            for piece in pieces(text, BODY_LIMIT):
                match = matcher.search(piece)
                if match:
                    return where, match.group(0)
                if clock() > deadline:
                    return PARTIAL_SYMBOL, None
        return None, None
