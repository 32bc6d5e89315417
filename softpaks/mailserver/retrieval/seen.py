"""What was already fetched, in the SoftPak's tables, so nothing is fetched
twice across sessions and restarts: the UIDs taken from each ISP mailbox
(mail_retrieval_seen), and, as a second line for an ISP that hands out a
message again under a new UID, the (Message-ID, recipient) pairs of recent
retrievals (mail_retrieval_recent, kept for WINDOW_SECONDS). Also the
per-account state row the pages show (mail_retrieval_state)."""

from __future__ import annotations

from firmware.config import transaction

WINDOW_SECONDS = 14 * 24 * 3600


def seen_uids(store, account: str) -> set[str]:
    return {uid for (uid,) in store.db.execute(
        "SELECT uid FROM mail_retrieval_seen WHERE account = ?", [account])}


def forget_gone(store, account: str, present: set[str]):
    """Forgets the UIDs no longer in the mailbox (deleted in an earlier
    session), so the table holds only what the ISP still has."""
    gone = seen_uids(store, account) - set(present)
    if gone:
        with transaction(store.db):
            store.db.conn.executemany("DELETE FROM mail_retrieval_seen WHERE account = ? AND uid = ?",
                                      [(account, uid) for uid in gone])


def is_recent(store, message_id: str, recipient: str, now: float,
              window: float = WINDOW_SECONDS) -> bool:
    """Whether this (Message-ID, recipient) was fetched within the window."""
    if not message_id:
        return False
    row = store.db.execute("SELECT seen FROM mail_retrieval_recent WHERE message_id = ? AND "
                           "recipient = ?", [message_id, recipient.lower()]).fetchone()
    return row is not None and row[0] >= now - window


def record_fetched(store, account: str, uid: str, message_id: str, recipients, now: float,
                   staged=()):
    """One transaction: the UID is seen, the pairs are recent and the
    STAGED ids (staging.py) are marked recorded, so they are released."""
    with transaction(store.db):
        store.db.conn.executemany("UPDATE mail_retrieval_staged SET recorded = 1 WHERE qid = ?",
                                  [(qid,) for qid in staged])
        store.db.execute("INSERT OR REPLACE INTO mail_retrieval_seen(account, uid, seen) "
                         "VALUES(?, ?, ?)", [account, uid, now])
        if message_id:
            for recipient in recipients:
                store.db.execute("INSERT OR REPLACE INTO mail_retrieval_recent(message_id, "
                                 "recipient, seen) VALUES(?, ?, ?)",
                                 [message_id, recipient.lower(), now])


def stage(store, account: str, qid: str):
    """Notes, before its file exists, that QID is being staged for ACCOUNT."""
    with transaction(store.db):
        store.db.execute("INSERT OR REPLACE INTO mail_retrieval_staged(qid, account, recorded) "
                         "VALUES(?, ?, 0)", [qid, account])


def staged(store, account: str) -> list[tuple[str, bool]]:
    """(queue id, whether its UID was recorded) of ACCOUNT's staged messages."""
    return [(qid, bool(recorded)) for qid, recorded in store.db.execute(
        "SELECT qid, recorded FROM mail_retrieval_staged WHERE account = ? ORDER BY qid",
        [account])]


def staged_accounts(store) -> list[str]:
    """The accounts with anything staged: what a death left, or a session under way."""
    return [account for (account,) in store.db.execute(
        "SELECT DISTINCT account FROM mail_retrieval_staged ORDER BY account")]


def forget_staged(store, qids):
    if qids:
        with transaction(store.db):
            store.db.conn.executemany("DELETE FROM mail_retrieval_staged WHERE qid = ?",
                                      [(qid,) for qid in qids])


def prune(store, now: float, window: float = WINDOW_SECONDS):
    with transaction(store.db):
        store.db.execute("DELETE FROM mail_retrieval_recent WHERE seen < ?", [now - window])


def record_state(store, result, now: float, error: str = ""):
    """The account's state row: the last run, whether it succeeded, how
    many were fetched, the summary; last_error is the most recent error and
    stays after later successful runs (ok says how the last run went).
    ERROR: what went wrong in a run that still succeeded (a message left at
    the ISP); a failed run's error is its detail."""
    with transaction(store.db):
        store.db.execute(
            "INSERT INTO mail_retrieval_state(account, last_run, ok, fetched, result, last_error) "
            "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(account) DO UPDATE SET "
            "last_run = excluded.last_run, ok = excluded.ok, fetched = excluded.fetched, "
            "result = excluded.result, last_error = CASE WHEN excluded.last_error = '' "
            "THEN mail_retrieval_state.last_error ELSE excluded.last_error END",
            [result.account, now, int(result.ok), result.fetched, result.summary,
             error or ("" if result.ok else result.detail)])


def state(store, account: str) -> dict | None:
    row = store.db.execute("SELECT account, last_run, ok, fetched, result, last_error FROM "
                           "mail_retrieval_state WHERE account = ?", [account]).fetchone()
    if row is None:
        return None
    return dict(zip(("account", "last_run", "ok", "fetched", "result", "last_error"), row))
