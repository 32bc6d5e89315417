"""The data-stage check of the content rules: GTUBE, the Default, Custom
and Heuristic filters, each fired rule a symbol with its score.

It looks at untrusted inbound mail only (not at clients that may relay, not
at whitelisted mail), and only when the Content Filter record of the
message's recipients is active; that record's Filter Type and Heuristic
filter say which rule sets run. GTUBE runs whenever the filter is active."""

from __future__ import annotations

import logging
import time

from firmware.mail.policy import Check, Context, Order

from .. import content_filter
from ..message_text import parse_cached
from . import custom
from .gtube import GTUBE
from .heuristic import HEURISTIC_RULES
from .mime_rules import ALL_DEFAULT_RULES
from .rule import Hit, Message, run_rules

CHECK_NAME = "antispam_rules"

log = logging.getLogger("gatebox.antispam")


def evaluate(message: Message, *, default: bool, heuristic: bool,
             custom_rules: custom.Compiled | None = None) -> list[Hit]:
    """The hits of the rule sets asked for, GTUBE first."""
    hits = run_rules((GTUBE,), message)
    if default:
        hits += run_rules(ALL_DEFAULT_RULES, message)
    if heuristic:
        hits += run_rules(HEURISTIC_RULES, message)
    if custom_rules is not None:
        hits += custom_rules.match(message)
    return hits


class RulesCheck:
    """The custom rules are read again whenever the settings generation
    moves (every rule change moves it)."""

    def __init__(self, store, clock=time.time):
        self.store = store
        self.clock = clock
        self._generation = object()
        self._custom = custom.Compiled([])

    def custom_rules(self, settings) -> custom.Compiled:
        generation = getattr(settings, "generation", None)
        if generation is None or generation != self._generation:
            self._custom = custom.Compiled(custom.rules(self.store))
            self._generation = generation
        return self._custom

    def __call__(self, ctx: Context):
        if ctx.may_relay or ctx.whitelisted or not ctx.message:
            return None
        found = content_filter.for_recipients(self.store, ctx.settings, ctx.recipients)
        if not found.active:
            return None
        message = Message.of(ctx.message, self.clock(), parse_cached(ctx.message))
        hits = evaluate(message, default=found.default, heuristic=found.heuristic,
                        custom_rules=self.custom_rules(ctx.settings) if found.custom else None)
        for hit in hits:
            ctx.add_symbol(hit.name, hit.score, hit.detail)
        if hits:
            ctx.count_result(CHECK_NAME, "matched")
        return None


def policy_checks(store) -> list[Check]:
    # A broken rule (or a locked database) must not defer inbound mail: skip.
    return [Check(CHECK_NAME, "data", RulesCheck(store), order=Order.CONTENT + 10,
                  on_error="skip")]
