"""Where `next` and `back` may send the browser: only a path on this box.

A link an attacker crafts must never turn a sign-in into a trip to another
site. Browsers and Werkzeug are generous: Werkzeug drops control characters
(`/%09/x` arrives as `//x`, which a browser reads as the host `x`), browsers
read a backslash as a slash, and a proxy or a later decode may turn `%2f`
into one. So anything but a plain absolute path in printable ASCII, with no
scheme, no host and none of those characters in any spelling, falls back."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import url_for

# Percent-encoded slash, backslash or percent sign (the latter hides the
# others behind a second decode: %252f).
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|25)", re.IGNORECASE)


def is_local_path(target: str | None) -> bool:
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return False
    if any(not 0x21 <= ord(char) <= 0x7E for char in target):
        return False  # control characters, spaces and anything beyond ASCII
    if "\\" in target or _ENCODED_SEPARATOR.search(target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def local_or(target: str | None, fallback: str) -> str:
    """target when it is a path on this box, else fallback."""
    return target if is_local_path(target) else fallback


def local_or_dashboard(target: str | None) -> str:
    return local_or(target, url_for("dashboard.index"))
