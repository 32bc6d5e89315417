"""Anti-Spam > Bayes: a Bayesian filter of our own on SQLite (no maintained
library fits a small image). tokens.py makes a message's OSB tokens,
store.py keeps their counts in DATA/antispam/bayes.db, classify.py combines
them (chi-square, as SpamBayes), check.py scores at DATA and auto-learns,
sieve.py and spool.py let Dovecot teach it from the Junk folder, cli.py
and the page teach it by hand."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from . import check, sieve, spool
from .cli import COMMANDS  # noqa: F401  (the part's commands)
from .learn import learn
from .settings import SETTINGS  # noqa: F401  (the part's settings)

log = logging.getLogger("gatebox.antispam")

__all__ = ["SETTINGS", "COMMANDS", "policy_checks", "learn", "message_actions", "on_released",
           "dovecot_settings", "services"]


def policy_checks(store) -> list:
    return check.policy_checks(store)


@dataclass(frozen=True)
class LearnAction:
    """A message action: Learn as spam / Learn as not spam."""
    name: str
    label: str
    spam: bool

    def run(self, store, message: bytes, about: dict) -> str:
        where = str(about.get("where") or "page")[:20]
        said = learn(store, message, self.spam, where)
        store.audit(str(about.get("actor") or "system"), f"bayes: a message {said} ({where})")
        return f"Bayes: {said}."


ACTIONS = (LearnAction("learn_spam", "Learn as spam", True),
           LearnAction("learn_ham", "Learn as not spam", False))


def message_actions(store) -> list:
    return list(ACTIONS)


def on_released(store, item, message, actor):
    """A released spam item was not spam: learn it so."""
    if getattr(item, "kind", "") != "spam" or not message:
        return
    said = learn(store, message, False, "release")
    log.info("bayes: released quarantine item %s %s (by %s)", getattr(item, "id", "?"), said, actor)


def dovecot_settings(store, data_dir) -> list[str]:
    return sieve.dovecot_settings(store, data_dir)


def services(store, options) -> list:
    return spool.services(store, options)
