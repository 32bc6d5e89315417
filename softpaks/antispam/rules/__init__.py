"""Anti-Spam > Rules: the content rules that score inbound mail at DATA.

- GTUBE (gtube.py): the test string, always spam when the Content Filter is
  active;
- Default (mime_rules.py): built-in rules on the message's form, most of
  them strict-MIME checks, which ISMail EP warns are aggressive;
- Heuristic (heuristic.py): named rules with scores, SpamAssassin-style;
- Custom (custom.py): the administrator's header and body patterns, each
  with a score or the direct action "spam".

The Content Filter record of the recipients (content_filter.py) says
whether any of it runs and which sets (checks.py)."""

from __future__ import annotations

from .checks import CHECK_NAME, evaluate, policy_checks  # noqa: F401
from .cli import COMMANDS  # noqa: F401
from .custom import MIGRATIONS  # noqa: F401
from .gtube import GTUBE, GTUBE_STRING  # noqa: F401
from .heuristic import HEURISTIC_RULES  # noqa: F401
from .mime_rules import DEFAULT_RULES, STRICT_MIME_RULES  # noqa: F401

SETTINGS: list = []
