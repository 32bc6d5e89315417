"""The one-time setup code: until an administrator exists, first-boot setup
in the web admin also asks for it, so that whoever reaches the page first is
someone who can read the box's console (or run `gatebox setup-code` on it),
not anyone on the network.

Each issue replaces the code before; only its hash is stored (in the meta
table), compared in constant time. Once an administrator exists no code
works, and none is issued."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from firmware.config import transaction

META_KEY = "setup_code_hash"
# No 0/O, 1/I/L: read off a console and typed by hand. 12 of 32 symbols: 60 bits.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 12
GROUP = 4


class SetupDone(RuntimeError):
    """An administrator exists: setup is over and needs no code."""


def admin_exists(store) -> bool:
    return store.db.execute("SELECT 1 FROM accounts WHERE is_admin = 1 LIMIT 1").fetchone() is not None


def _normalised(code: str) -> str:
    return "".join(char for char in code.upper() if char not in " -\t")


def _hash(code: str) -> str:
    return hashlib.sha256(_normalised(code).encode()).hexdigest()


def issue(store, actor: str = "system") -> str:
    """A new code (the previous one stops working), as XXXX-XXXX-XXXX."""
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    with transaction(store.db):
        if admin_exists(store):
            raise SetupDone("an administrator exists: first-boot setup is done and needs no code")
        store.db.execute("INSERT INTO meta(key, value) VALUES(?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         [META_KEY, _hash(code)])
        store.audit(actor, "issue setup code")
    return "-".join(code[i:i + GROUP] for i in range(0, LENGTH, GROUP))


def matches(store, code: str | None) -> bool:
    """True when code is the last one issued and no administrator exists yet."""
    if not code or admin_exists(store):
        return False
    row = store.db.execute("SELECT value FROM meta WHERE key = ?", [META_KEY]).fetchone()
    return row is not None and hmac.compare_digest(row[0], _hash(code))


def discard(store) -> None:
    """Once setup is done, the stored hash is of no more use."""
    with transaction(store.db):
        store.db.execute("DELETE FROM meta WHERE key = ?", [META_KEY])
