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


DEFAULT_GROUP = "default"


def _m2_groups(db):
    db.execute("""CREATE TABLE IF NOT EXISTS mail_groups (
        name TEXT PRIMARY KEY, email INTEGER NOT NULL DEFAULT 0,
        new_users INTEGER NOT NULL DEFAULT 0)""")
    db.execute("""CREATE TABLE IF NOT EXISTS mail_group_members (
        grp TEXT NOT NULL REFERENCES mail_groups(name) ON DELETE CASCADE,
        member TEXT NOT NULL, PRIMARY KEY (grp, member))""")
    # Triggers rather than code in the accounts module: a user added by any
    # path (setup, web, CLI, an older firmware after a rollback) joins the
    # groups marked for new users, and a deleted user leaves every group so a
    # later account of the same name starts afresh.
    db.execute("""CREATE TRIGGER IF NOT EXISTS mail_groups_new_user AFTER INSERT ON accounts
        BEGIN INSERT OR IGNORE INTO mail_group_members(grp, member)
              SELECT name, NEW.name FROM mail_groups WHERE new_users = 1; END""")
    db.execute("""CREATE TRIGGER IF NOT EXISTS mail_groups_deleted_user AFTER DELETE ON accounts
        BEGIN DELETE FROM mail_group_members WHERE member = OLD.name; END""")
    # Until now every account had a mailbox: keep it so on upgrade.
    db.execute("INSERT OR IGNORE INTO mail_groups(name, email, new_users) VALUES(?, 1, 1)",
               [DEFAULT_GROUP])
    db.execute("INSERT OR IGNORE INTO mail_group_members(grp, member) SELECT ?, name FROM accounts",
               [DEFAULT_GROUP])


MIGRATIONS = [(1, _m1_users_and_groups), (2, _m2_groups)]
