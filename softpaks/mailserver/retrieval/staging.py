"""A fetched message enters the queue exactly once, whenever the process dies.

Queuing a message and recording its UID as seen are two writes to two
stores (the spool's files, the settings database); no order of the two is
safe alone. Queued first, a death before the record fetches the message
again: once qmgr has delivered the first copy, nothing is left that would
show it was queued, and it is delivered twice. Recorded first, a death
before the file exists deletes at the ISP a message never queued.

So the message is staged: its queue id is noted first (mail_retrieval_staged,
not yet recorded), the file is written durably to the queue's hold, where
qmgr leaves it, the UID is recorded in the same transaction that marks the
staged id recorded, and only then is the file released to incoming. The
next session of the account, before it lists the mailbox, settles what a
death left: a recorded id still in hold is released, an unrecorded one is
removed (its UID is not seen, so it is fetched again).

A message the screening quarantines is staged the same way: each quarantine
item's id is noted before its file is written, and the UID is recorded with
them. There is nothing to release; an unrecorded item is removed, as the
message will be fetched (and quarantined) again.

A message split into several transactions (content.py) stages every part
first; the UID is recorded once, with all of their ids, and only then is
any part released: a death in between fetches the whole message again.
The notices the screening wrote (a virus notice) are staged with their part
in the same way, so a message fetched again is not announced twice."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

from firmware.mail.quarantine import Quarantine
from firmware.mail.queue import NotInQueue
from firmware.mail.submit import Submission, reserve_queue_id, submit

from . import seen

log = logging.getLogger("gatebox.retrieval")


def hold_reason(account: str) -> str:
    return f"being fetched from {account}; the retrieval releases it"


@dataclass(frozen=True)
class Part:
    """One transaction of a fetched message: queued, or quarantined as
    HELD = (kind, reason); NOTICES are queued beside it either way."""
    submission: Submission
    held: tuple | None = None
    notices: tuple = ()


def put(ctx, account: str, parts: Iterable[Part], record: Callable[[list], None]) -> list[str]:
    """Stages PARTS for ACCOUNT, one message split into transactions, taken
    one at a time. RECORD(every id staged) records the fetch once all are
    written, in one transaction; then the queued ones are released. Returns
    each part's (first) id. Should PARTS raise midway, the parts staged so
    far stay unrecorded, and settle() removes them."""
    ids, queued, firsts = [], [], []
    for part in parts:
        if part.held is None:
            firsts.append(_queue(ctx, account, part.submission))
            queued.append(firsts[-1])
            ids.append(firsts[-1])
        else:
            staged = _quarantine(ctx, account, part.submission, *part.held)
            firsts.append(staged[0])
            ids += staged
        for notice in part.notices:
            queued.append(_queue(ctx, account, notice))
            ids.append(queued[-1])
    record(ids)
    for qid in queued:
        _release(ctx, qid)
    return firsts


def _queue(ctx, account: str, submission: Submission) -> str:
    """Writes SUBMISSION durably to the queue's hold, where qmgr leaves it."""
    qid = _reserve(ctx, account)
    submission.queue_id, submission.hold_reason = qid, hold_reason(account)
    submit(ctx.spool, submission, ctx.announce, ctx.settings)
    return qid


def _quarantine(ctx, account: str, submission: Submission, kind: str, reason: str) -> list[str]:
    """Quarantines SUBMISSION: one item, or one per recipient for spam."""
    ids = []

    def reserve() -> str:
        ids.append(_reserve(ctx, account))
        return ids[-1]
    Quarantine(ctx.store.data_dir).put(submission, kind, reason, ctx.settings, reserve)
    return ids


def _reserve(ctx, account: str) -> str:
    qid = reserve_queue_id()
    seen.stage(ctx.store, account, qid)
    return qid


def settle(ctx, account: str) -> dict:
    """Releases what ACCOUNT recorded but had not released, removes what it
    staged but never recorded, and forgets the staged ids. Run under the
    account's lock, before a session lists the mailbox and after it."""
    done = {"released": 0, "removed": 0}
    rows = seen.staged(ctx.store, account)
    held = Quarantine(ctx.store.data_dir)
    for qid, recorded in rows:
        if recorded:
            done["released"] += _released(ctx, qid)
        else:
            done["removed"] += _removed(ctx, held, account, qid)
    seen.forget_staged(ctx.store, [qid for qid, _ in rows])
    if done["released"] or done["removed"]:
        log.warning("%s: an earlier retrieval stopped mid-message: %d released to the queue, "
                    "%d removed to be fetched again", account, done["released"], done["removed"])
    return done


def _released(ctx, qid: str) -> bool:
    try:
        _release(ctx, qid)
    except NotInQueue:
        return False    # released before the process died, or a quarantine item: final
    return True


def _removed(ctx, held: Quarantine, account: str, qid: str) -> bool:
    """An unrecorded id: its file in the queue's hold, or its quarantine item, goes."""
    try:
        ctx.spool.remove("hold", qid)
        return True
    except NotInQueue:
        pass
    try:
        held.discard(qid, f"its fetch from {account} was not recorded; fetched again")
        return True
    except NotInQueue:
        return False    # never written


def _release(ctx, qid: str):
    ctx.spool.move(qid, "hold", "incoming")
    log.info("%s: released from hold (fetch recorded)", qid)
    ctx.announce(qid)
