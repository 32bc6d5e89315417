"""Failed-login slowdown and limit, per client address.

Each failure makes the client wait before its next attempt counts: 1, 2, 4 ...
seconds, at most a minute. LOCK_AFTER failures within WINDOW lock the client
out for WINDOW even with the right password. Kept in memory, one per app: the UI runs as
one gunicorn worker (with threads), so every request sees the same counts; a
restart forgets them, which only helps a guesser as much as a reboot would."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

LOCK_AFTER = 10
WINDOW = 15 * 60
MAX_DELAY = 60.0


@dataclass
class _Client:
    failures: int = 0
    first: float = 0.0
    not_before: float = 0.0


class LoginThrottle:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, client: str) -> float:
        """0 when the client may try now, else how long it must wait."""
        with self._lock:
            state = self._current(client)
            return max(0.0, state.not_before - self.clock()) if state else 0.0

    def failed(self, client: str):
        with self._lock:
            now = self.clock()
            state = self._current(client) or _Client(first=now)
            state.failures += 1
            if state.failures >= LOCK_AFTER:
                state.not_before = state.first + WINDOW
            else:
                state.not_before = now + min(MAX_DELAY, 2.0 ** (state.failures - 1))
            self._clients[client] = state

    def succeeded(self, client: str):
        with self._lock:
            self._clients.pop(client, None)

    def _current(self, client: str) -> _Client | None:
        state = self._clients.get(client)
        if state and self.clock() - state.first > WINDOW and self.clock() >= state.not_before:
            del self._clients[client]
            return None
        return state

