"""Teaching the filter one message: from the CLI, a page button, a Junk
move through IMAPSieve, a quarantine release or auto-learn. Learning is
idempotent per message (see store.py)."""

from __future__ import annotations

import logging

from . import store as bayes_store
from . import tokens
from .settings import MAX_TOKENS

log = logging.getLogger("gatebox.antispam")

MAX_MESSAGE = 10 * 1024 * 1024    # beyond this the rest is not read anyway (message_text)
SAID = {"learnt": "learnt as {kind}", "already": "already learnt as {kind}",
        "moved": "learnt as {kind} (it was learnt as {other} before)"}


def learn_message(data_dir, message: bytes, spam: bool, source: str, max_tokens: int) -> str:
    """What was done, in words."""
    if not message.strip():
        raise ValueError("an empty message teaches nothing")
    message = message[:MAX_MESSAGE]
    found = tokens.tokens(message)
    db = bayes_store.for_data(data_dir)
    outcome = db.learn(tokens.digest(message), found, spam, source)
    if outcome != "already":
        removed = db.expire(max_tokens)
        if removed:
            log.info("bayes: %d old rare tokens removed (cap %d)", removed, max_tokens)
    kind, other = ("spam", "ham") if spam else ("ham", "spam")
    return SAID[outcome].format(kind=kind, other=other)


def learn(store, message: bytes, spam: bool, source: str) -> str:
    """The part API: learn with the store's data directory and size cap."""
    said = learn_message(store.data_dir, message, spam, source, store.get(MAX_TOKENS))
    log.info("bayes: message %s (%s)", said, source)
    return said
