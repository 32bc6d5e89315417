"""The web admin's sessions, kept in the settings database.

The signed cookie holds only a random token; the box keeps its hash, the
administrator's name, a fingerprint of their password hash and when the
session was last used. Signing out deletes the row, so a copy of the cookie
taken before is refused; a password change (here or on the console) or a
deleted account changes the fingerprint and ends every session of theirs.
A session ends after the idle timeout and, however busy, after
MAX_LIFETIME_SECONDS."""

from __future__ import annotations

import hashlib
import secrets
import time

from firmware.config import transaction

MAX_LIFETIME_SECONDS = 12 * 60 * 60
COOKIE_KEY = "sid"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def fingerprint(store, name: str) -> str | None:
    """None unless name is an administrator."""
    row = store.db.execute("SELECT password_hash FROM accounts WHERE name = ? AND is_admin = 1",
                           [name]).fetchone()
    return hashlib.sha256(row[0].encode()).hexdigest()[:16] if row else None


def start(store, cookie, name: str, idle_timeout: float) -> None:
    """A new session for name, replacing whatever the cookie held."""
    end(store, cookie)
    cookie.clear()
    token = secrets.token_urlsafe(32)
    now = time.time()
    with transaction(store.db):
        # Forget sessions nobody can resume any more, so the table stays small.
        store.db.execute("DELETE FROM web_sessions WHERE seen < ? OR created < ?",
                         [now - idle_timeout, now - MAX_LIFETIME_SECONDS])
        store.db.execute("INSERT INTO web_sessions(token_hash, admin, fingerprint, created, seen) "
                         "VALUES(?,?,?,?,?)",
                         [_token_hash(token), name, fingerprint(store, name) or "", now, now])
    cookie.permanent = True
    cookie[COOKIE_KEY] = token


def resume(store, cookie, idle_timeout: float) -> str | None:
    """The administrator this cookie's session belongs to, marked as seen
    now; None when there is no such session or it has ended (and then the
    row is gone)."""
    token = cookie.get(COOKIE_KEY)
    if not isinstance(token, str):
        return None
    key = _token_hash(token)
    row = store.db.execute("SELECT admin, fingerprint, created, seen FROM web_sessions "
                           "WHERE token_hash = ?", [key]).fetchone()
    if row is None:
        return None
    name, stored_fingerprint, created, seen = row
    now = time.time()
    current = fingerprint(store, name)
    if now - seen > idle_timeout or now - created > MAX_LIFETIME_SECONDS or \
            current is None or not secrets.compare_digest(current, stored_fingerprint):
        with transaction(store.db):
            store.db.execute("DELETE FROM web_sessions WHERE token_hash = ?", [key])
        return None
    with transaction(store.db):
        store.db.execute("UPDATE web_sessions SET seen = ? WHERE token_hash = ?", [now, key])
    return name


def end(store, cookie) -> None:
    token = cookie.get(COOKIE_KEY)
    if isinstance(token, str):
        with transaction(store.db):
            store.db.execute("DELETE FROM web_sessions WHERE token_hash = ?", [_token_hash(token)])
