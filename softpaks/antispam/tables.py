"""The SoftPak's own tables, added by numbered migrations that run whether or
not it is licensed, so lists and greylist records outlive a lapse."""

from __future__ import annotations


def _m1_antispam(db):
    # Black and whitelists: level server (scope ''), domain (scope: a local
    # domain) or user (scope: a local address); entry an IP address or network,
    # a domain or an address.
    db.execute("""CREATE TABLE IF NOT EXISTS antispam_lists (
        level TEXT NOT NULL, scope TEXT NOT NULL, color TEXT NOT NULL, entry TEXT NOT NULL,
        added REAL NOT NULL, PRIMARY KEY (level, scope, color, entry))""")
    # Greylist triplets: network (/24 or /64), sender, recipient.
    db.execute("""CREATE TABLE IF NOT EXISTS greylist_triplets (
        network TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,
        first_seen REAL NOT NULL, last_seen REAL NOT NULL, passed REAL,
        PRIMARY KEY (network, sender, recipient))""")
    db.execute("CREATE INDEX IF NOT EXISTS greylist_triplets_seen ON greylist_triplets(last_seen)")
    db.execute("""CREATE TABLE IF NOT EXISTS greylist_networks (
        network TEXT PRIMARY KEY, passed INTEGER NOT NULL DEFAULT 0, whitelisted REAL)""")
    # DNS blocklist zones: the hourly RFC 5782 test and refusals of service.
    db.execute("""CREATE TABLE IF NOT EXISTS dnsbl_zones (
        zone TEXT PRIMARY KEY, checked REAL, healthy INTEGER, detail TEXT NOT NULL DEFAULT '',
        warning TEXT NOT NULL DEFAULT '', warned REAL)""")


def _m2_greylist_network_seen(db):
    # When an auto-whitelisted network last sent: it stays whitelisted for the
    # Pass Record Lifetime after that, as a passed triplet does.
    db.execute("ALTER TABLE greylist_networks ADD COLUMN last_seen REAL")


def _m3_greylist_pending_index(db):
    # The caps on pending triplets count them at each new attempt.
    db.execute("CREATE INDEX IF NOT EXISTS greylist_pending ON greylist_triplets(network) "
               "WHERE passed IS NULL")


MIGRATIONS = [(1, _m1_antispam), (2, _m2_greylist_network_seen), (3, _m3_greylist_pending_index)]
