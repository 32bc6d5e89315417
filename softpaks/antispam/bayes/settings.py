"""Anti-Spam > Bayes: its settings, declared once like every other."""

from __future__ import annotations

from firmware.config.types import Bool, Integer, Setting

MENU = "Anti-Spam > Bayes"
BAYES = "antispam.bayes"
AUTOLEARN = "antispam.bayes_autolearn"
MIN_SPAM = "antispam.bayes_min_spam"
MIN_HAM = "antispam.bayes_min_ham"
MAX_TOKENS = "antispam.bayes_max_tokens"

SETTINGS = [
    Setting(BAYES, Bool(), True, "Bayesian Filter", MENU,
            "Scores each inbound message by what the box learnt from spam and ham (symbols "
            "BAYES_00 to BAYES_99), while the Message Filter is active. It votes only once "
            "enough of both were learnt."),
    Setting(MIN_SPAM, Integer(1, 100_000), 200, "Spam Needed Before It Votes", MENU,
            "Spam messages to learn before the filter scores anything."),
    Setting(MIN_HAM, Integer(1, 100_000), 200, "Ham Needed Before It Votes", MENU,
            "Messages that are not spam to learn before the filter scores anything."),
    Setting(AUTOLEARN, Bool(), False, "Auto-Learn", MENU,
            "Learn very clear cases on its own, as SpamAssassin does: spam when the other "
            "layers scored it 12 or more, ham when they scored it 0.1 or less. The Bayes "
            "score itself never counts towards this."),
    Setting(MAX_TOKENS, Integer(10_000, 5_000_000), 150_000, "Maximum Tokens", MENU,
            "The database's size cap. Past it, tokens seen in one message only and not learnt "
            "for 30 days go first, then the least recently learnt."),
]
