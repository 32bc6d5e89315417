"""The duplicate filter's key and its memory for a single smtpd process."""

from __future__ import annotations

import collections
import hashlib

DUPLICATE_WINDOW = 15 * 60


class DuplicateFilter:
    """Clients that time out after a minute resend a message the box already
    took. Same client, same envelope (sender and recipients), same Message-ID
    and same content within the window: answer 250 again but keep one copy.
    The envelope is part of the key because an MTA that splits a recipient
    list sends the same message in several transactions, each one needed."""

    def __init__(self, window: float = DUPLICATE_WINDOW):
        self.window = window
        self._seen: collections.OrderedDict = collections.OrderedDict()

    def key(self, client_ip: str, sender: str, recipients, message_id: str, message: bytes,
            more: int = 0):
        """`more`: octets of a large message beyond `message`, its prefix."""
        if not message_id:
            return None
        return (client_ip, sender, tuple(sorted(recipients)), message_id,
                hashlib.sha256(message).digest(), more)

    def lookup(self, key, now: float):
        while self._seen:
            oldest, (when, _) = next(iter(self._seen.items()))
            if now - when <= self.window:
                break
            self._seen.popitem(last=False)
        found = self._seen.get(key)
        return found[1] if found else None

    def remember(self, key, qid: str, now: float):
        self._seen[key] = (now, qid)
