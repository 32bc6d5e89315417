"""Numbered, forward-only schema migrations. Each runs once, in order, in its
own transaction; the schema version is kept in the meta table. A migration
only adds (tables, columns, rows) so that older firmware can still read the
database after a rollback."""

from __future__ import annotations

import sqlite_utils


def _m1_base(db: sqlite_utils.Database):
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("""CREATE TABLE IF NOT EXISTS accounts (
        name TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL)""")
    db.execute("""CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
        what TEXT NOT NULL, old TEXT, new TEXT)""")


def _m2_licenses(db: sqlite_utils.Database):
    # key_text is the whole signed key so it can be verified again on every read.
    db.execute("""CREATE TABLE IF NOT EXISTS licenses (
        key_id TEXT PRIMARY KEY, key_text TEXT NOT NULL, serial TEXT NOT NULL,
        issued TEXT NOT NULL, grants TEXT NOT NULL,
        activated_at REAL NOT NULL, activated_by TEXT NOT NULL)""")


def _m3_mail_stats(db: sqlite_utils.Database):
    # One row per hour (epoch seconds of the hour's start) for the dashboard.
    db.execute("""CREATE TABLE IF NOT EXISTS mail_stats (
        hour INTEGER PRIMARY KEY, received INTEGER NOT NULL DEFAULT 0,
        delivered INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,
        bounced INTEGER NOT NULL DEFAULT 0)""")


MIGRATIONS = [
    (1, _m1_base),
    (2, _m2_licenses),
    (3, _m3_mail_stats),
]

LATEST = MIGRATIONS[-1][0]


def current_version(db: sqlite_utils.Database) -> int:
    if "meta" not in db.table_names():
        return 0
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def upgrade(db: sqlite_utils.Database, extra: list | None = None):
    """Apply core migrations, then any (name, number, fn) a SoftPak registers."""
    version = current_version(db)
    for number, migrate in MIGRATIONS:
        if number > version:
            _apply(db, migrate, "schema_version", number)
    for name, number, migrate in extra or []:
        key = f"schema_version:{name}"
        row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        if number > (int(row[0]) if row else 0):
            _apply(db, migrate, key, number)


def _apply(db, migrate, key, number):
    db.execute("BEGIN IMMEDIATE")
    try:
        migrate(db)
        db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE "
                   "SET value = excluded.value", [key, str(number)])
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
