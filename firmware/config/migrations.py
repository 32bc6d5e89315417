"""Numbered, forward-only schema migrations, the core's and every installed
SoftPak's. Each runs once, in order, in its own transaction; the versions
are kept in the meta table. A migration only adds (tables, columns, rows) so
that older firmware can still read the database after a rollback.

They run at `gatebox init` and when the box starts (`gatebox run`), never
on an ordinary open: `require_current` only checks, cheaply, that nothing is
left to run."""

from __future__ import annotations

import sqlite_utils

from firmware import plugins

from .db import transaction


class SchemaOutOfDate(RuntimeError):
    """The database needs migrations this process will not run."""


def _m1_base(db: sqlite_utils.Database):
    db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
    db["settings"].create({"key": str, "value": str}, pk="key", not_null={"value"},
                          if_not_exists=True)
    db["accounts"].create({"name": str, "password_hash": str, "is_admin": int, "created": float},
                          pk="name", not_null={"password_hash", "is_admin", "created"},
                          defaults={"is_admin": 0}, if_not_exists=True)
    # Raw SQL: sqlite-utils cannot ask for AUTOINCREMENT, and audit ids must never be reused.
    db.execute("""CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
        what TEXT NOT NULL, old TEXT, new TEXT)""")


def _m2_licenses(db: sqlite_utils.Database):
    # key_text is the whole signed key so it can be verified again on every read.
    columns = {"key_id": str, "key_text": str, "serial": str, "issued": str, "grants": str,
               "activated_at": float, "activated_by": str}
    db["licenses"].create(columns, pk="key_id", not_null=set(columns) - {"key_id"},
                          if_not_exists=True)


def _m3_mail_stats(db: sqlite_utils.Database):
    # One row per hour (epoch seconds of the hour's start) for the dashboard.
    counters = ("received", "delivered", "rejected", "bounced")
    db["mail_stats"].create({"hour": int, **{c: int for c in counters}}, pk="hour",
                            not_null=set(counters), defaults={c: 0 for c in counters},
                            if_not_exists=True)


def _m4_check_stats(db: sqlite_utils.Database):
    # Per hour, how often each policy check (by name) refused mail.
    db["check_stats"].create({"hour": int, "name": str, "count": int}, pk=("hour", "name"),
                             not_null={"hour", "name", "count"}, defaults={"count": 0},
                             if_not_exists=True)


def _m5_web_sessions(db: sqlite_utils.Database):
    # The web admin's sessions, kept on the box so that signing out ends one
    # for good: the cookie holds only a random token, stored here as its hash.
    db["web_sessions"].create({"token_hash": str, "admin": str, "fingerprint": str,
                               "created": float, "seen": float}, pk="token_hash",
                              not_null={"admin", "fingerprint", "created", "seen"},
                              if_not_exists=True)


def _m6_login_limits(db: sqlite_utils.Database):
    # Failed sign-ins (SMTP AUTH, POP3/IMAP, web) and the lockouts they caused,
    # kept here so that a restart forgives nothing (firmware/login_limits.py).
    db.execute("""CREATE TABLE IF NOT EXISTS login_failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, realm TEXT NOT NULL,
        client TEXT NOT NULL, account TEXT NOT NULL, service TEXT NOT NULL)""")
    db.execute("CREATE INDEX IF NOT EXISTS login_failures_client ON login_failures(realm, client, at)")
    db.execute("CREATE INDEX IF NOT EXISTS login_failures_account ON login_failures(realm, account, at)")
    db.execute("""CREATE TABLE IF NOT EXISTS login_locks (
        realm TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, since REAL NOT NULL,
        until REAL NOT NULL, strikes INTEGER NOT NULL DEFAULT 1, reason TEXT NOT NULL,
        PRIMARY KEY (realm, kind, key))""")


def _m7_address_verification(db: sqlite_utils.Database):
    # Callout answers (firmware/mail/verify/cache.py): kind is "sender",
    # "recipient" or "catchall" (the random-address probe of a LAN server).
    db.execute("""CREATE TABLE IF NOT EXISTS verify_cache (
        kind TEXT NOT NULL, address TEXT NOT NULL, status TEXT NOT NULL, reply TEXT NOT NULL,
        checked REAL NOT NULL, PRIMARY KEY (kind, address))""")
    # The address list last read from the LDAP server, and how that went.
    db.execute("CREATE TABLE IF NOT EXISTS ldap_addresses (address TEXT PRIMARY KEY)")
    db.execute("""CREATE TABLE IF NOT EXISTS ldap_sync (
        id INTEGER PRIMARY KEY CHECK (id = 1), attempted REAL, succeeded REAL,
        count INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '',
        requested REAL)""")


MIGRATIONS = [
    (1, _m1_base),
    (2, _m2_licenses),
    (3, _m3_mail_stats),
    (4, _m4_check_stats),
    (5, _m5_web_sessions),
    (6, _m6_login_limits),
    (7, _m7_address_verification),
]

LATEST = MIGRATIONS[-1][0]
CORE_KEY = "schema_version"


def _versions(db: sqlite_utils.Database) -> dict[str, int]:
    if not db["meta"].exists():
        return {}
    return {key: int(value) for key, value in
            db.execute("SELECT key, value FROM meta WHERE key = ? OR key LIKE ?",
                       [CORE_KEY, CORE_KEY + ":%"])}


def current_version(db: sqlite_utils.Database) -> int:
    return _versions(db).get(CORE_KEY, 0)


def _pending(db: sqlite_utils.Database, extra) -> list[tuple]:
    """(meta key, number, fn) still to run, in order: the core's first."""
    versions = _versions(db)
    pending = [(CORE_KEY, number, migrate) for number, migrate in MIGRATIONS
               if number > versions.get(CORE_KEY, 0)]
    pending += [(f"{CORE_KEY}:{name}", number, migrate) for name, number, migrate in extra
                if number > versions.get(f"{CORE_KEY}:{name}", 0)]
    return pending


def upgrade(db: sqlite_utils.Database, extra: list | None = None):
    """Apply core migrations, then any (softpak, number, fn) given."""
    for key, number, migrate in _pending(db, extra or []):
        with transaction(db):
            migrate(db)
            db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE "
                       "SET value = excluded.value", [key, str(number)])


def upgrade_all(db: sqlite_utils.Database):
    """The core's and every installed SoftPak's migrations (init and start)."""
    upgrade(db, extra=plugins.registry().migrations())


def require_current(db: sqlite_utils.Database, data_dir) -> None:
    """Raise SchemaOutOfDate, saying what to run, if any migration is pending.
    A newer schema (after a firmware rollback) is fine: migrations only add."""
    pending = _pending(db, plugins.registry().migrations())
    if pending:
        names = ", ".join(sorted({key.partition(":")[2] or "core" for key, _, _ in pending}))
        raise SchemaOutOfDate(
            f"the settings database at {data_dir} needs upgrading ({names}); run "
            f"'gatebox --data {data_dir} init' or start the box ('gatebox run'), which upgrade it")
