"""The quarantine digest's settings (Anti-Spam > Quarantine Digest)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from firmware.config.types import Bool, Integer, Invalid, Setting

MENU = "Anti-Spam > Quarantine Digest"

DIGEST = "antispam.digest"
DIGEST_TIME = "antispam.digest_time"
DIGEST_URL = "antispam.digest_url"
QUARANTINE_DAYS = "antispam.quarantine_days"

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class TimeOfDay:
    rule: str = "must be a time of day HH:MM (24 hours), e.g. 07:30"

    def parse(self, raw):
        text = str(raw or "").strip()
        if len(text) == 4 and text[1] == ":":
            text = "0" + text
        if not _TIME.match(text):
            raise Invalid(self.rule)
        return text

    def render(self, value) -> str:
        return value


@dataclass(frozen=True)
class BaseUrl:
    """An https:// (or http://) address of the web admin, or empty for the default."""
    rule: str = ("must be empty or an address such as https://gatebox.example.com/ (https or "
                 "http, a host name and optionally a port and a path)")

    def parse(self, raw):
        text = str(raw or "").strip()
        if not text:
            return ""
        if len(text) > 255 or any(c.isspace() or ord(c) < 32 for c in text) or \
                any(c in text for c in "<>\"'`\\?#"):
            raise Invalid(self.rule)
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            raise Invalid(self.rule) from None
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.username \
                or parts.password:
            raise Invalid(self.rule)
        return text if text.endswith("/") else text + "/"

    def render(self, value) -> str:
        return value


SETTINGS = [
    Setting(QUARANTINE_DAYS, Integer(1, 365), 7, "Keep Quarantined Spam (days)", MENU,
            "Spam held in the quarantine longer than this is deleted, and the digest's links "
            "stop working. Email Server > Quarantine's Keep Quarantined Messages still bounds "
            "every kind: spam is never kept longer than that."),
    Setting(DIGEST, Bool(), False, "Send Quarantine Digest", MENU,
            "Each recipient with spam held in the quarantine gets one mail a day listing it, "
            "with links to release a message or release it and always allow its sender."),
    Setting(DIGEST_TIME, TimeOfDay(), "08:00", "Digest Time", MENU,
            "When the digest is sent, in the box's time zone (System > Time Zone)."),
    Setting(DIGEST_URL, BaseUrl(), "", "Web Address for Links", MENU,
            "Where the digest's links lead: the box's web admin as the recipients reach it. "
            "Empty: https://<Host Name>/. The links work only from the networks Allow "
            "Administration From admits (by default the Trusted Networks)."),
]
