"""The SoftPak's own tables (Users & Groups). Added by numbered migrations
that run whether or not the SoftPak is licensed, so the data outlives a lapse.
Users are the product's accounts; these tables only add what mail needs."""

from __future__ import annotations


def _m1_users_and_groups(db):
    # The domain a user's Maildir lives under, fixed when the mailbox is first
    # made so a later change of the Domain Name does not hide old mail.
    db.execute("""CREATE TABLE IF NOT EXISTS mail_users (
        name TEXT PRIMARY KEY, domain TEXT NOT NULL)""")
    db.execute("""CREATE TABLE IF NOT EXISTS mail_aliases (
        name TEXT PRIMARY KEY, target TEXT NOT NULL)""")
    db.execute("""CREATE TABLE IF NOT EXISTS mail_lists (name TEXT PRIMARY KEY)""")
    db.execute("""CREATE TABLE IF NOT EXISTS mail_list_members (
        list TEXT NOT NULL REFERENCES mail_lists(name) ON DELETE CASCADE,
        member TEXT NOT NULL, PRIMARY KEY (list, member))""")
    db.execute("""CREATE TABLE IF NOT EXISTS mail_forwarders (
        name TEXT PRIMARY KEY, target TEXT NOT NULL, keep_copy INTEGER NOT NULL DEFAULT 0)""")
    db.execute("""CREATE TABLE IF NOT EXISTS mail_responders (
        name TEXT PRIMARY KEY, subject TEXT NOT NULL DEFAULT '', message TEXT NOT NULL)""")
    # When each sender was last answered, for "once per sender per N days".
    db.execute("""CREATE TABLE IF NOT EXISTS mail_responder_log (
        name TEXT NOT NULL, sender TEXT NOT NULL, answered REAL NOT NULL,
        PRIMARY KEY (name, sender))""")


MIGRATIONS = [(1, _m1_users_and_groups)]
