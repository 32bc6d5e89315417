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


def _m3_retrieval(db):
    # What was fetched from each ISP mailbox (by UIDL / IMAP UIDVALIDITY:UID),
    # so a message is never fetched twice, even after a restart.
    db.execute("""CREATE TABLE IF NOT EXISTS mail_retrieval_seen (
        account TEXT NOT NULL, uid TEXT NOT NULL, seen REAL NOT NULL,
        PRIMARY KEY (account, uid))""")
    # (Message-ID, recipient) of recent retrievals: the second line against
    # duplicates, when an ISP hands out a message again under a new UIDL.
    db.execute("""CREATE TABLE IF NOT EXISTS mail_retrieval_recent (
        message_id TEXT NOT NULL, recipient TEXT NOT NULL, seen REAL NOT NULL,
        PRIMARY KEY (message_id, recipient))""")
    # Per account (multidrop, mirrored:<user>, remote:<id>, etrn, mailbag):
    # the last run, its result and the last error, for the pages.
    db.execute("""CREATE TABLE IF NOT EXISTS mail_retrieval_state (
        account TEXT PRIMARY KEY, last_run REAL, ok INTEGER, fetched INTEGER,
        result TEXT NOT NULL DEFAULT '', last_error TEXT NOT NULL DEFAULT '')""")
    # What the envelope-header probe learnt: the header and which occurrence
    # (counted from the top) the ISP writes.
    db.execute("""CREATE TABLE IF NOT EXISTS mail_envelope_detected (
        id INTEGER PRIMARY KEY CHECK (id = 1), header TEXT NOT NULL,
        occurrence INTEGER NOT NULL, detected REAL NOT NULL)""")


def _m4_isp_accounts(db):
    # Mirrored: each user's own ISP mailbox. The password must be sent to the
    # ISP, so it is kept as given (like the Relay Server's), never shown.
    db.execute("""CREATE TABLE IF NOT EXISTS mail_isp_logins (
        name TEXT PRIMARY KEY, login TEXT NOT NULL, password TEXT NOT NULL DEFAULT '')""")
    db.execute("""CREATE TRIGGER IF NOT EXISTS mail_isp_logins_deleted_user AFTER DELETE ON accounts
        BEGIN DELETE FROM mail_isp_logins WHERE name = OLD.name; END""")
    # Remote POP (ISMail): further mailboxes anywhere, each into one local recipient.
    db.execute("""CREATE TABLE IF NOT EXISTS mail_remote_accounts (
        id INTEGER PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL,
        protocol TEXT NOT NULL, tls TEXT NOT NULL, verify INTEGER NOT NULL DEFAULT 1,
        login TEXT NOT NULL, password TEXT NOT NULL DEFAULT '', recipient TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1)""")


def _m5_retrieval_runner(db):
    # The retrieval service's schedule and the last run, for the dashboard and
    # the Settings page; `requested` is a Retrieve now the service has not run yet.
    db.execute("""CREATE TABLE IF NOT EXISTS mail_retrieval_runner (
        id INTEGER PRIMARY KEY CHECK (id = 1), next_run REAL, started REAL, finished REAL,
        requested REAL, summary TEXT NOT NULL DEFAULT '')""")
    db.execute("INSERT OR IGNORE INTO mail_retrieval_runner(id) VALUES (1)")


def _m6_retrieval_staged(db):
    # Fetched messages written to the queue's hold before their UID is
    # recorded as seen (retrieval/staging.py): recorded = 0 until the UID is,
    # so the next session knows whether to release the file or drop it.
    db.execute("""CREATE TABLE IF NOT EXISTS mail_retrieval_staged (
        qid TEXT PRIMARY KEY, account TEXT NOT NULL, recorded INTEGER NOT NULL DEFAULT 0)""")


MIGRATIONS = [(1, _m1_users_and_groups), (2, _m2_groups), (3, _m3_retrieval),
              (4, _m4_isp_accounts), (5, _m5_retrieval_runner), (6, _m6_retrieval_staged)]
