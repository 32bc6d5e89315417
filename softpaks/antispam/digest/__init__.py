"""Part 2's quarantine digest: the spam quarantine's lifetime, the daily
digest mail to each recipient with spam held, its one-click signed links
(served by web/release_links.py without an admin sign-in), and the
quarantine page's "Release and always allow this sender"."""

from __future__ import annotations

from . import tokens
from .actions import message_actions  # noqa: F401  (the part's API)
from .cli import COMMANDS  # noqa: F401
from .service import services  # noqa: F401
from .settings import SETTINGS  # noqa: F401

MIGRATIONS = [(7, tokens.migrate)]
# The views of the digest's links (web/release_links.py).
PUBLIC_ENDPOINTS = ["antispam.release_link"]
