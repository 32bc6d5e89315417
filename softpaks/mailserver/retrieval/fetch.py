"""One ISP mailbox fetched into the queue.

For each message: retrieve it, work out its local recipients, queue it
(staging.py: durable in the queue's hold, its UID recorded as seen and its
(Message-ID, recipient) pairs as recent in one transaction, then released
to qmgr), and only then mark it deleted at the ISP; deletions become final
at the end of the session. A crash at any point therefore loses nothing and
duplicates nothing: a message staged but not recorded is removed and
fetched again, one recorded but not released is released, and one recorded
but not yet deleted at the ISP is deleted, unfetched, next time.

Before it is queued, a message passes the content checks smtpd runs at the
end of DATA (content.py: the Anti-Virus scan): refused, it goes to the
quarantine; a temporary failure leaves it at the ISP.

One bad message (unreadable, or its recipients cannot be worked out, or
the queue refuses it) is left at the ISP and noted; the others go on. A
failed account is a failed AccountResult, never an exception."""

from __future__ import annotations

import email.utils
import fcntl
import hashlib
import logging
import re
from pathlib import Path
from typing import Callable

from firmware.mail.addresses import is_clean
from firmware.mail.checks import message_size_limit
from firmware.mail.headers import safe_text, summary, unfolded_headers
from firmware.mail.submit import Submission

from . import Account, AccountResult, RetrievalContext, seen, staging
from .content import ContentScreen, TryLater
from .mailbox_client import MailboxError, MessageRefused, open_mailbox

log = logging.getLogger("gatebox.retrieval")
_LOCK_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class Recipients(list):
    """What recipients_for returns: the local recipients, and how many of
    them stand in for addresses no one here answers to (for the counts)."""

    def __init__(self, addresses=(), unaddressable: int = 0):
        super().__init__(addresses)
        self.unaddressable = unaddressable


def message_key(message: bytes) -> str:
    """The Message-ID with a digest of the body, or for mail without one a
    digest of the bytes. The body counts too, so that another message under
    a Message-ID seen before (reused by a sender, or guessed by a stranger
    to suppress the real one) is never dropped as a duplicate; the same
    message delivered again, with other ISP header lines on top, still is."""
    message_id = summary(message).message_id.strip()
    if not message_id:
        return "sha256:" + hashlib.sha256(message).hexdigest()
    end = message.find(b"\r\n\r\n")
    body = message[end + 4:] if end >= 0 else b""
    return f"{message_id[:900]} {hashlib.sha256(body).hexdigest()[:32]}"


def envelope_sender(message: bytes) -> str:
    """The topmost Return-Path the ISP's delivery wrote, else the null sender."""
    for name, value in unfolded_headers(message):
        if name == "return-path":
            _, address = email.utils.parseaddr(value)
            return address if address and is_clean(address) and "@" in address else ""
    return ""


def isp_delivery_renamed(message: bytes) -> bytes:
    """The message with the Delivered-To lines the ISP's delivery wrote on
    top (above its first Received) renamed, as fetchmail's dropdelivered
    but kept readable: they name the office's own addresses, so local
    delivery would take them for a mail loop. Lines further down, e.g. the
    box's own from a forward that came back, still stop a real loop."""
    lines = message.splitlines(keepends=True)
    for index, line in enumerate(lines):
        name = line.split(b":", 1)[0].strip().lower()
        if not line.strip() or name == b"received":
            break
        if name == b"delivered-to" and line[:1] not in (b" ", b"\t"):
            lines[index] = b"X-ISP-Delivered-To:" + line.split(b":", 1)[1]
    return b"".join(lines)


def _trace(account: Account, peer: str, hostname: str):
    protocol = account.protocol.upper() + ("S" if account.tls != "none" else "")

    def trace(qid: str) -> bytes:
        return (f"Received: from {safe_text(account.host, 100)} ([{peer}])\r\n"
                f"\tby {hostname} (gatebox) with {protocol} id {qid};\r\n"
                f"\t{email.utils.formatdate(localtime=True)}\r\n").encode()
    return trace


def _lock(store, account: str):
    """An exclusive lock on the account for the session, or None when
    another process (the scheduled run, `gatebox retrieve now`) holds it."""
    directory = Path(store.data_dir) / "retrieval"
    directory.mkdir(exist_ok=True)
    handle = open(directory / (_LOCK_NAME.sub("_", account) + ".lock"), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def settle_left_over(ctx: RetrievalContext) -> dict:
    """At start: settles what a death left staged for any account, so a
    message recorded but still in the queue's hold goes out now, not at the
    account's next session (hours away, or never if the server type changed),
    and an unrecorded quarantine item leaves the quarantine page. An account
    whose session is running (its lock held) is left to that session."""
    done = {"released": 0, "removed": 0}
    for account in seen.staged_accounts(ctx.store):
        lock = _lock(ctx.store, account)
        if lock is None:
            continue
        try:
            for key, count in staging.settle(ctx, account).items():
                done[key] += count
        except Exception:   # one account's trouble must not leave the others unsettled
            log.exception("%s: settling what an earlier retrieval left staged", account)
        finally:
            lock.close()
    return done


def fetch_account(ctx: RetrievalContext, account: Account, recipients_for: Callable[[bytes], list],
                  limit: int | None = None, cafile: str | None = None) -> AccountResult:
    """Fetches ACCOUNT's mailbox into the queue; at most LIMIT messages
    (None: all). RECIPIENTS_FOR(message bytes) gives the local envelope
    recipients (a list, or a Recipients with an unaddressable count); an
    empty list or an exception leaves that message at the ISP. Updates the
    account's mail_retrieval_state row. Never raises for a mailbox problem."""
    lock = _lock(ctx.store, account.name)
    if lock is None:
        result = AccountResult(account.name, False,
                               detail="another retrieval of this mailbox is running")
        return result
    try:
        staging.settle(ctx, account.name)
        result, problem = _fetch(ctx, account, recipients_for, limit, cafile)
        staging.settle(ctx, account.name)
    except Exception as error:   # a bug must not stop the other accounts
        log.exception("%s: retrieval failed", account.name)
        result, problem = AccountResult(account.name, False, detail=f"internal error: {error}"), ""
    finally:
        lock.close()
    try:
        seen.record_state(ctx.store, result, ctx.now, problem)
    except Exception:
        log.exception("%s: cannot record the retrieval state", account.name)
    level = logging.INFO if result.ok else logging.WARNING
    log.log(level, "%s", result.summary)
    return result


def _fetch(ctx, account, recipients_for, limit, cafile):
    result = AccountResult(account.name, True)
    problems = []
    store, settings = ctx.store, ctx.settings
    try:
        mailbox = open_mailbox(account, cafile=cafile)
    except MailboxError as error:
        return AccountResult(account.name, False, detail=str(error)), ""
    with mailbox:
        try:
            listing = mailbox.list()
            already = seen.seen_uids(store, account.name)
            seen.forget_gone(store, account.name, {m.uid for m in listing})
            seen.prune(store, ctx.now)
            peer = mailbox.peer
            trace = _trace(account, peer, settings["system.hostname"])
            screen = ContentScreen(ctx)
            size_cap = fetch_size_cap(settings)
            retrieved = 0
            for listed in listing:
                if listed.uid in already:
                    # Queued in a session that ended before its deletions did.
                    mailbox.delete(listed.key)
                    continue
                if limit is not None and retrieved >= limit:
                    result.left += 1
                    continue
                if listed.size > size_cap:
                    problem = (f"message {listed.uid} left at the ISP: {listed.size} octets, "
                               f"over the {size_cap} the box takes (Maximum Message Size)")
                    log.warning("%s: %s", account.name, problem)
                    problems.append(problem)
                    continue
                retrieved += 1
                try:
                    raw = mailbox.retrieve(listed.key, size_cap)
                    outcome = _take(ctx, account, listed.uid, raw, recipients_for, trace, peer,
                                    screen)
                except MessageRefused as error:
                    problems.append(f"message {listed.uid} left at the ISP: {error}")
                    log.warning("%s: %s", account.name, problems[-1])
                    continue
                except MailboxError:
                    raise
                except TryLater as error:
                    # The scanner is down: every further message would wait for it too.
                    problems.append(f"message {listed.uid} and the rest left at the ISP "
                                    f"for the next session: {safe_text(error, 300)}")
                    log.warning("%s: %s", account.name, problems[-1])
                    break
                except Exception as error:
                    problem = f"message {listed.uid} left at the ISP: {safe_text(error, 300)}"
                    log.warning("%s: %s", account.name, problem)
                    problems.append(problem)
                    continue
                mailbox.delete(listed.key)
                if outcome is None:
                    result.duplicates += 1
                else:
                    qids, unaddressable = outcome
                    result.fetched += 1
                    result.queued += qids
                    result.unaddressable += unaddressable
            mailbox.commit()
        except MailboxError as error:
            # What was queued is recorded as seen: the next session deletes it.
            result.ok = False
            problems.insert(0, str(error))
    if problems:
        result.detail = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)"
                                                  if len(problems) > 3 else "")
    return result, ("" if not result.ok else result.detail)


# A fetched message is held whole in memory while it is queued: whatever the
# Maximum Message Size says (unlimited included), never more than this.
FETCH_HARD_CAP = 64 * 1024 * 1024


def fetch_size_cap(settings) -> int:
    limit = message_size_limit(settings)
    return FETCH_HARD_CAP if limit is None else min(limit, FETCH_HARD_CAP)


def _take(ctx, account, uid, raw, recipients_for, trace, peer, screen):
    """Queues one message: (queue ids, one per transaction, and the
    unaddressable count), or None when every recipient already has it (a
    duplicate). Recipients whose Anti-Spam records differ are screened and
    queued apart (content.ContentScreen.transactions)."""
    recipients = recipients_for(raw)
    if not recipients:
        raise ValueError("no recipient for this message")
    unaddressable = getattr(recipients, "unaddressable", 0)
    key = message_key(raw)
    fresh = [r for r in dict.fromkeys(recipients) if not seen.is_recent(ctx.store, key, r, ctx.now)]
    if not fresh:
        seen.record_fetched(ctx.store, account.name, uid, key, [], ctx.now)
        log.info("%s: %s dropped, already fetched for every recipient", account.name, key[:100])
        return None
    sender = envelope_sender(raw)
    renamed = isp_delivery_renamed(raw)

    def parts():
        # One at a time: each part is staged before the next is screened,
        # so memory holds one marked copy of the message, not one per part.
        for group in screen.transactions(sender, fresh, peer):
            screened = screen(renamed, sender, group, peer)
            yield staging.Part(Submission(
                sender=sender, recipients=group, message=screened.message, origin="retrieval",
                direction="inbound", client_address=peer, client_name=account.host,
                helo=account.host, trace=trace, note=f"fetched from {account.name}"),
                screened.quarantine, screened.notices)

    def record(staged):
        seen.record_fetched(ctx.store, account.name, uid, key, fresh, ctx.now, staged=staged)
    return staging.put(ctx, account.name, parts(), record), min(unaddressable, len(fresh))


def fetch_accounts(ctx: RetrievalContext, accounts, recipients_for_account: Callable,
                   limit: int | None = None, cafile: str | None = None) -> list[AccountResult]:
    """Each account in turn, a failure of one never stopping the next.
    RECIPIENTS_FOR_ACCOUNT(account) returns that account's recipients_for."""
    results = []
    for account in accounts:
        try:
            recipients_for = recipients_for_account(account)
        except Exception as error:
            results.append(AccountResult(account.name, False, detail=str(error)))
            continue
        results.append(fetch_account(ctx, account, recipients_for, limit, cafile))
    return results


def session_limit(settings) -> int | None:
    """Maximum messages to retrieve per session, None for unlimited."""
    value = settings["email.max_retrieve_per_session"]
    return None if value in (None, "", "unlimited") else int(value)


__all__ = ["Recipients", "fetch_account", "fetch_accounts", "session_limit", "message_key",
           "envelope_sender"]
