"""What a DNS layer found about a client a moment ago, kept for a minute, so
that a session with fifty recipients asks once, not fifty times, and a zone
that does not answer costs its timeout once a minute rather than per RCPT."""

from __future__ import annotations

import time

RESULT_SECONDS = 60.0
MAX_ENTRIES = 10_000


class Recent:
    def __init__(self, seconds: float = RESULT_SECONDS, clock=time.monotonic,
                 max_entries: int = MAX_ENTRIES):
        self.seconds = seconds
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict = {}

    def get(self, key):
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key, value):
        if len(self._entries) >= self.max_entries:
            now = self.clock()
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                # A flood of distinct clients: forgetting costs only a repeated query.
                self._entries.clear()
        self._entries[key] = (self.clock() + self.seconds, value)
