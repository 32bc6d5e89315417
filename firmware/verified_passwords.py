"""Passwords this process verified a moment ago, so a storm of logins costs
one scrypt per account instead of one per login.

An office's mail clients log in again and again with the same password, and
each IMAP, POP3 or SMTP AUTH login would run scrypt: 16 MiB and, in a starved
256 MB guest under emulation, seconds. Twenty at once pushed the box into swap
and past its clients' patience. Dovecot's auth cache answers the same need the
same way (auth_cache_ttl).

What is kept is an HMAC, under a key that lives only in this process's memory,
of the stored hash and the password together, for a successful check only:
- a changed password is a new stored hash (a new salt), so it is never met;
- a wrong password is never remembered and always costs its full scrypt, so
  guessing gains nothing;
- nothing is written anywhere, and a restart forgets everything.
Callers must not remember a check against a stand-in hash (an unknown name):
its quick second answer would tell unknown names from real ones.

Everything else about a login (lockouts, permissions, licence) is still asked
every time; only the hash is skipped."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict

# Long enough to cover a storm and a mail client's reconnects, short enough
# that a password leaked from memory is a recent one.
TTL_SECONDS = 15 * 60.0
CAPACITY = 512


class VerifiedPasswords:
    def __init__(self, ttl: float = TTL_SECONDS, capacity: int = CAPACITY,
                 clock=time.monotonic):
        self.ttl, self.capacity, self.clock = ttl, capacity, clock
        self._key = os.urandom(32)
        self._verified: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()   # logins are checked in worker threads

    def _tag(self, password: str, stored: str) -> bytes:
        return hmac.new(self._key, stored.encode("utf-8", "surrogatepass") + b"\0" +
                        password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def known(self, password: str, stored: str) -> bool:
        """True when PASSWORD was verified against STORED within the TTL."""
        tag, now = self._tag(password, stored), self.clock()
        with self._lock:
            at = self._verified.get(tag)
            if at is None:
                return False
            if now - at >= self.ttl:
                del self._verified[tag]
                return False
            return True

    def remember(self, password: str, stored: str):
        """PASSWORD has just been verified against STORED by its hash."""
        tag, now = self._tag(password, stored), self.clock()
        with self._lock:
            self._verified[tag] = now
            self._verified.move_to_end(tag)
            while len(self._verified) > self.capacity:
                self._verified.popitem(last=False)

    def __len__(self) -> int:
        return len(self._verified)


shared = VerifiedPasswords()
