"""The quarantine: messages a check would not deliver but the box accepted
(a virus found with the action Quarantine, a spam score past the quarantine
threshold), held where only the administrator can release or delete them.

It is a Spool of its own (DATA/quarantine) whose "hold" state holds the
messages, so a quarantined message is written exactly as durably as a
queued one (tmp, fsync, rename, fsync of the directory) before the client
sees 250. The envelope's last_error carries "KIND: reason" (virus: virus
found (NAME)). A release goes through submit, the one way into the queue,
and the quarantined copy is removed only once the released one is on disk:
a crash in between leaves both, never neither.

Spam is held one item per recipient, so that a recipient's one-click
release (the Anti-Spam SoftPak's digest) releases only their copy; a virus
is held once for all its recipients. A SQLite index (quarantine_index)
serves searches; the files stay the truth.

After a release the active SoftPaks are told (gatebox_quarantine_released),
each on its own: one failing is logged and never undoes the release nor
keeps the others from hearing of it.

Keep Quarantined Messages (email.quarantine_days) is the longest any item
is kept, whatever its kind, so nothing outlives it even when the SoftPak
that put it there is gone; a SoftPak may delete its own kind sooner
(expire with kinds=...)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from firmware import plugins

from .headers import safe_text, unfolded_headers
from .quarantine_index import QuarantineIndex, Search
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

    @property
    def recipients(self) -> list[str]:
        return [r.address for r in self.envelope.recipients]


@dataclass(frozen=True)
class Fired:
    """One rule or check that scored, as the held message's header says."""
    name: str
    score: float
    detail: str


_FIRED = re.compile(r"^\s*([A-Za-z0-9_.:-]{1,80})\((-?\d{1,9}(?:\.\d{1,6})?)\)\s*(.*)$", re.S)
# A detail may hold "; " itself: a new entry starts only where a NAME(score) follows.
_NEXT = re.compile(r"; (?=[A-Za-z0-9_.:-]{1,80}\(-?\d)")


def fired_rules(message: bytes) -> list[Fired]:
    """What scored: X-Spam-Report ("NAME(score) detail; ...") when the
    message was tagged, else the names and scores of X-Gatebox-Checks
    ("total=T; NAME(score), ..."). Both are the box's own fields (scoring
    removes a client's); their text is still shown escaped, never trusted."""
    report = checks = None
    for name, value in unfolded_headers(message):
        if name == "x-spam-report" and report is None:
            report = value
        elif name == "x-gatebox-checks" and checks is None:
            checks = value
    found = []
    if report and report.strip() != "none":
        for part in _NEXT.split(report):
            match = _FIRED.match(part)
            if match:
                found.append(Fired(match[1], float(match[2]), safe_text(match[3], 200)))
    elif checks:
        listed = checks.partition(";")[2]
        for part in listed.split(","):
            match = _FIRED.match(part)
            if match:
                found.append(Fired(match[1], float(match[2]), ""))
    return found[:100]


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

    def put(self, submission: Submission, kind: str, reason: str, settings,
            reserve: Callable[[], str] | None = None) -> str:
        """Hold the submission (blocking); returns its quarantine id (spam:
        the first recipient's, each recipient getting an item of their own).
        RESERVE, when given, names each item before its file is written (a
        producer that notes the ids first: retrieval's staging)."""
        submission.hold_reason = reason_text(kind, reason)
        self.create()
        if kind == "spam":
            parts = [dataclasses.replace(submission, recipients=[recipient])
                     for recipient in dict.fromkeys(submission.recipients)]
        else:
            parts = [submission]
        ids = []
        for part in parts:
            if reserve is not None:
                part = dataclasses.replace(part, queue_id=reserve())
            envelope, stored = prepare(part, settings)
            self.spool.write(envelope, stored, STATE)
            log.info("%s: from=<%s>, size=%d, nrcpt=%d (quarantine: %s)", envelope.id,
                     envelope.sender, envelope.size, len(envelope.recipients), envelope.last_error)
            ids.append(envelope.id)
        return ids[0]

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

    def index(self) -> QuarantineIndex:
        """The search index, brought up to date by each search; close it after use."""
        self.create()
        return QuarantineIndex(self.spool)

    def search(self, search: Search = Search(), offset: int = 0, limit: int = 50):
        index = self.index()
        try:
            return index.search(search, offset, limit)
        finally:
            index.close()

    def load(self, qid: str) -> tuple[Item, bytes]:
        envelope, message = self.spool.load(STATE, qid)
        return Item(envelope), message

    def release(self, qid: str, spool: Spool, announce, settings, actor: str,
                recipients: list[str] | None = None) -> str:
        """Queue the message for its original recipients (or those of them
        given); returns the new queue id. The released copy is the held
        message unchanged but for one field on top saying it came out of
        the quarantine. Recipients not released stay held."""
        item, message = self.load(qid)
        envelope = item.envelope
        wanted = [r.address for r in envelope.recipients]
        if recipients is not None:
            asked = {address.lower() for address in recipients}
            wanted = [address for address in wanted if address.lower() in asked]
            if not wanted:
                raise NotInQueue(qid)
        note = f"released from quarantine {qid} by {safe_text(actor, 64)}"
        stamp = (f"X-Gatebox-Quarantine: released {qid} by {safe_text(actor, 64)} "
                 f"({item.kind}: {item.reason})\r\n").encode("utf-8", "replace")
        new_id = submit(spool, Submission(
            sender=envelope.sender, recipients=wanted, message=stamp + message, origin="release",
            direction=envelope.direction,
            client_address=envelope.client_address, client_name=envelope.client_name,
            helo=envelope.helo, auth_user=envelope.auth_user, received=envelope.received,
            body_8bit=envelope.body_8bit, note=note), announce, settings)
        kept = [r for r in envelope.recipients if r.address not in wanted]
        if kept:
            self.spool.rewrite(dataclasses.replace(envelope, recipients=kept), STATE, STATE)
        else:
            self._remove(qid)
        log.info("%s: released as %s by %s%s", qid, new_id, safe_text(actor, 64),
                 f" (for {len(wanted)} of its recipients)" if kept else "")
        return new_id

    def release_one(self, qid: str, spool: Spool, announce, store, actor: str,
                    recipients: list[str] | None = None) -> str:
        """Release, audit, and tell the SoftPaks (see tell_released)."""
        item, message = self.load(qid)
        new_id = self.release(qid, spool, announce, store.snapshot(), actor, recipients)
        store.audit(actor, "quarantine release", qid, new_id)
        tell_released(store, item, message, actor)
        return new_id

    def discard(self, qid: str, why: str):
        """Removes an item that should not have been kept (NotInQueue when
        there is none)."""
        self._remove(qid)
        log.info("%s: removed from the quarantine: %s", qid, why)

    def delete(self, qid: str, actor: str):
        self._remove(qid)
        log.info("%s: deleted from the quarantine by %s", qid, safe_text(actor, 64))

    def expire(self, days: int, now: float | None = None, kinds=None) -> int:
        """Delete what has been held longer than `days` (of the given kinds
        only, when given); returns how many."""
        cutoff = (time.time() if now is None else now) - days * 86400
        gone = 0
        for item in self.items():
            if item.envelope.received < cutoff and (kinds is None or item.kind in kinds):
                try:
                    self._remove(item.id)
                except NotInQueue:
                    continue
                gone += 1
        if gone:
            log.info("quarantine: %d %smessage(s) older than %d days deleted", gone,
                     f"{'/'.join(kinds)} " if kinds else "", days)
        return gone

    def release_many(self, qids, spool: Spool, announce, store, actor: str):
        """Release each and audit it, as the page and `gatebox quarantine
        release` do: ([(qid, new queue id)], [error text])."""
        done, errors = [], []
        for qid in qids:
            try:
                new_id = self.release_one(qid, spool, announce, store, actor)
            except NotInQueue:
                errors.append(f"{safe_text(qid, 40)}: no such message in the quarantine")
                continue
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


def tell_released(store, item: Item, message: bytes, actor: str):
    """Each active SoftPak's gatebox_quarantine_released on its own, so one
    that fails neither undoes the release nor silences the others."""
    try:
        implementations = plugins.active_plugin_manager(store).hook \
            .gatebox_quarantine_released.get_hookimpls()
    except Exception:
        log.exception("%s: released, but the SoftPaks could not be asked about it", item.id)
        return
    for implementation in implementations:
        try:
            given = {"store": store, "item": item, "message": message, "actor": actor}
            implementation.function(**{name: given[name] for name in implementation.argnames
                                       if name in given})
        except Exception:
            log.exception("%s: released; the %s SoftPak's release hook failed", item.id,
                          implementation.plugin_name)


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
