"""The quarantine: messages a check would not deliver but the box accepted
(a virus found with the action Quarantine, a spam score past the quarantine
threshold), held where only the administrator can release or delete them.

It is a Spool of its own (DATA/quarantine) whose "hold" state holds the
messages, so a quarantined message is written exactly as durably as a
queued one (tmp, fsync, rename, fsync of the directory) before the client
sees 250. The envelope's last_error carries "KIND: reason" (virus: virus
found (NAME)). A release goes through submit, the one way into the queue,
and the quarantined copy is removed only once the released one is on disk:
a crash in between leaves both, never neither."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .headers import safe_text
from .queue import Envelope, NotInQueue, Spool
from .submit import Submission, prepare, submit

STATE = "hold"
KINDS = ("virus", "spam")

log = logging.getLogger("gatebox.quarantine")


@dataclass(frozen=True)
class Item:
    envelope: Envelope

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def kind(self) -> str:
        kind = self.envelope.last_error.partition(":")[0]
        return kind if kind in KINDS else "other"

    @property
    def reason(self) -> str:
        return self.envelope.last_error.partition(":")[2].strip()


def reason_text(kind: str, reason: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown quarantine kind {kind!r}; one of {', '.join(KINDS)}")
    return f"{kind}: {safe_text(reason, 200)}"


class Quarantine:
    def __init__(self, data_dir: str | Path):
        self.spool = Spool(Path(data_dir) / "quarantine")

    def create(self):
        self.spool.create()

    def recover(self) -> dict:
        """At start: partial files a crash left in tmp/ are dropped (their
        client never saw 250)."""
        self.create()
        return self.spool.drop_unfinished()

    def put(self, submission: Submission, kind: str, reason: str, settings) -> str:
        """Hold the submission (blocking); returns its quarantine id."""
        submission.hold_reason = reason_text(kind, reason)
        envelope, stored = prepare(submission, settings)
        self.create()
        self.spool.write(envelope, stored, STATE)
        log.info("%s: from=<%s>, size=%d, nrcpt=%d (quarantine: %s)", envelope.id,
                 envelope.sender, envelope.size, len(envelope.recipients), envelope.last_error)
        return envelope.id

    async def put_async(self, submission: Submission, kind: str, reason: str, settings) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            None, self.put, submission, kind, reason, settings)

    def items(self, kind: str | None = None) -> list[Item]:
        """Newest first. A file that cannot be read is left out of the
        listing (and logged), never fatal to it."""
        found = []
        if not self.spool.root.exists():
            return found
        for qid in self.spool.ids(STATE):
            try:
                item = Item(self.spool.read_envelope(STATE, qid))
            except NotInQueue:
                continue  # released or deleted meanwhile
            except Exception as error:
                log.warning("quarantine: %s cannot be read: %s", qid, error)
                continue
            if kind is None or item.kind == kind:
                found.append(item)
        found.sort(key=lambda item: item.envelope.received, reverse=True)
        return found

    def count(self) -> int:
        return self.spool.count(STATE) if self.spool.root.exists() else 0

    def load(self, qid: str) -> tuple[Item, bytes]:
        envelope, message = self.spool.load(STATE, qid)
        return Item(envelope), message

    def release(self, qid: str, spool: Spool, announce, settings, actor: str) -> str:
        """Queue the message for its original recipients; returns the new
        queue id. The released copy is marked so the checks' headers show it
        came out of the quarantine."""
        item, message = self.load(qid)
        envelope = item.envelope
        note = f"released from quarantine {qid} by {safe_text(actor, 64)}"
        stamp = (f"X-Gatebox-Quarantine: released {qid} by {safe_text(actor, 64)} "
                 f"({item.kind}: {item.reason})\r\n").encode("utf-8", "replace")
        new_id = submit(spool, Submission(
            sender=envelope.sender, recipients=[r.address for r in envelope.recipients],
            message=stamp + message, origin="release", direction=envelope.direction,
            client_address=envelope.client_address, client_name=envelope.client_name,
            helo=envelope.helo, auth_user=envelope.auth_user, received=envelope.received,
            body_8bit=envelope.body_8bit, note=note), announce, settings)
        self._remove(qid)
        log.info("%s: released as %s by %s", qid, new_id, safe_text(actor, 64))
        return new_id

    def delete(self, qid: str, actor: str):
        self._remove(qid)
        log.info("%s: deleted from the quarantine by %s", qid, safe_text(actor, 64))

    def expire(self, days: int, now: float | None = None) -> int:
        """Delete what has been held longer than `days`; returns how many."""
        cutoff = (time.time() if now is None else now) - days * 86400
        gone = 0
        for item in self.items():
            if item.envelope.received < cutoff:
                try:
                    self._remove(item.id)
                except NotInQueue:
                    continue
                gone += 1
        if gone:
            log.info("quarantine: %d message(s) older than %d days deleted", gone, days)
        return gone

    def release_many(self, qids, spool: Spool, announce, store, actor: str):
        """Release each and audit it, as the page and `gatebox quarantine
        release` do: ([(qid, new queue id)], [error text])."""
        done, errors = [], []
        for qid in qids:
            try:
                new_id = self.release(qid, spool, announce, store.snapshot(), actor)
            except NotInQueue:
                errors.append(f"{safe_text(qid, 40)}: no such message in the quarantine")
                continue
            store.audit(actor, "quarantine release", qid, new_id)
            done.append((qid, new_id))
        return done, errors

    def delete_many(self, qids, store, actor: str):
        done, errors = [], []
        for qid in qids:
            try:
                self.delete(qid, actor)
            except NotInQueue:
                errors.append(f"{safe_text(qid, 40)}: no such message in the quarantine")
                continue
            store.audit(actor, "quarantine delete", qid, "")
            done.append(qid)
        return done, errors

    def _remove(self, qid: str):
        self.spool.remove(STATE, qid)


EXPIRE_SECONDS = 3600.0


async def keep_expired(data_dir: Path, current_settings, stop: asyncio.Event):
    """Deletes what outlived Keep Quarantined Messages, hourly, until stop."""
    quarantine = Quarantine(data_dir)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            await loop.run_in_executor(None, quarantine.expire,
                                       current_settings()["email.quarantine_days"])
        except Exception:
            log.exception("quarantine expiry failed; trying again in an hour")
        try:
            await asyncio.wait_for(stop.wait(), EXPIRE_SECONDS)
        except asyncio.TimeoutError:
            pass
