"""The digest's one-click links: signed tokens that work once.

A token is base64url(payload) "." base64url(HMAC-SHA256(key, payload)); the
payload is JSON with the quarantine item's id, the recipient whose copy it
is, the action (release | allow) and the expiry (epoch seconds). The key is
the box's own, 32 random bytes made on first use in DATA/antispam/digest-key
(0600, written durably), so a token from one box means nothing to another.

A used token's id (a hash of its payload) is recorded until the token's
expiry, then pruned: a second use, a replay of a prefetched link, or a
second click is refused. Tokens are claimed before they act, atomically (a
primary key), so two clicks at once cannot both act."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from firmware.config import transaction
from firmware.system import durable

KEY_FILE = "digest-key"
ACTIONS = ("release", "allow")
MAX_TOKEN = 2048


class TokenRefused(ValueError):
    """A token that is not (or no longer) good; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Grant:
    item: str
    recipient: str
    action: str
    expires: float

    @property
    def token_id(self) -> str:
        return _token_id(self)


def key(data_dir) -> bytes:
    directory = Path(data_dir) / "antispam"
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    return durable.create_once(directory / KEY_FILE, secrets.token_bytes(32))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _payload(grant: Grant) -> bytes:
    return json.dumps({"i": grant.item, "r": grant.recipient, "a": grant.action,
                       "e": int(grant.expires)}, separators=(",", ":"), sort_keys=True).encode()


def _token_id(grant: Grant) -> str:
    return hashlib.sha256(_payload(grant)).hexdigest()


def sign(data_dir, grant: Grant) -> str:
    if grant.action not in ACTIONS:
        raise ValueError(f"unknown link action {grant.action!r}")
    payload = _payload(grant)
    mac = hmac.new(key(data_dir), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(data_dir, token: str, now: float | None = None) -> Grant:
    """The grant a token carries, or TokenRefused: tampered or malformed
    (400), expired (410). Whether it was used is asked of the database."""
    token = str(token or "")
    body, dot, signature = token.partition(".")
    if not dot or len(token) > MAX_TOKEN:
        raise TokenRefused("This link is not a valid quarantine link (it may have been cut "
                           "short or changed).")
    try:
        payload, mac = _unb64(body), _unb64(signature)
    except (binascii.Error, ValueError):
        raise TokenRefused("This link is not a valid quarantine link.") from None
    expected = hmac.new(key(data_dir), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise TokenRefused("This link is not a valid quarantine link: its signature does not "
                           "match (it was changed, or it comes from another box).")
    try:
        data = json.loads(payload)
        grant = Grant(str(data["i"]), str(data["r"]), str(data["a"]), float(data["e"]))
    except (ValueError, TypeError, KeyError):
        raise TokenRefused("This link is not a valid quarantine link.") from None
    if grant.action not in ACTIONS:
        raise TokenRefused("This link is not a valid quarantine link.")
    if (time.time() if now is None else now) >= grant.expires:
        raise TokenRefused("This link has expired: the message is no longer kept in the "
                           "quarantine.", 410)
    return grant


def was_used(store, grant: Grant) -> bool:
    return store.db.execute("SELECT 1 FROM antispam_digest_used WHERE token = ?",
                            [grant.token_id]).fetchone() is not None


def claim(store, grant: Grant, now: float | None = None):
    """Mark the token used; TokenRefused (410) when it already was."""
    now = time.time() if now is None else now
    try:
        with transaction(store.db):
            store.db.execute("DELETE FROM antispam_digest_used WHERE expires <= ?", [now])
            store.db.execute("INSERT INTO antispam_digest_used(token, expires, used) "
                             "VALUES (?, ?, ?)", [grant.token_id, grant.expires, now])
    except sqlite3.IntegrityError:
        raise TokenRefused("This link was already used: each link works once.", 410) from None


def unclaim(store, grant: Grant):
    """Give a token back when its action could not be done for a passing reason."""
    with transaction(store.db):
        store.db.execute("DELETE FROM antispam_digest_used WHERE token = ?", [grant.token_id])


def prune(store, now: float | None = None) -> int:
    with transaction(store.db):
        return store.db.execute("DELETE FROM antispam_digest_used WHERE expires <= ?",
                                [time.time() if now is None else now]).rowcount


def migrate(db):
    # Used one-click tokens, kept until they would have expired anyway; and
    # the days a digest went out, so a restart does not send the day's again.
    db.execute("""CREATE TABLE IF NOT EXISTS antispam_digest_used (
        token TEXT PRIMARY KEY, expires REAL NOT NULL, used REAL NOT NULL)""")
    db.execute("CREATE INDEX IF NOT EXISTS antispam_digest_used_expires "
               "ON antispam_digest_used(expires)")
    db.execute("""CREATE TABLE IF NOT EXISTS antispam_digest_runs (
        day TEXT PRIMARY KEY, started REAL NOT NULL, finished REAL, sent INTEGER NOT NULL DEFAULT 0,
        since REAL)""")
