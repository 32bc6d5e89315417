"""The durable mail spool. Files are the truth.

One file per message, named by its queue id, living in exactly one state
directory: incoming, active, deferred, hold or corrupt. A state change is a
single rename. A file is written under tmp/, fsync'd, renamed into place and
its directory fsync'd before the client is told 250; concurrent sessions share
directory fsyncs (group commit, see Committer).

File layout: a magic line, one line of JSON (the envelope), then the message
bytes exactly as received.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import queue
import threading
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Union

from firmware.background_work import run_as_background_work

MAGIC = b"GATEBOX-QUEUE 1\n"
STATES = ("incoming", "active", "deferred", "hold", "corrupt")
_HEADER_READ = 64 * 1024


class QueueError(Exception):
    pass


class NotInQueue(QueueError):
    pass


# The file system holding the queue is full (or the service user's quota is).
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def out_of_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in _NO_SPACE


@dataclass
class Recipient:
    address: str
    status: str = "pending"      # pending | sent | failed
    detail: str = ""             # the last reply or error, for the log and the DSN
    original: str = ""           # as given at RCPT time, when routing rewrote it


@dataclass
class Envelope:
    id: str
    sender: str
    recipients: list
    received: float
    client_address: str = ""
    client_name: str = ""
    helo: str = ""
    auth_user: str = ""
    direction: str = "inbound"   # inbound (from the Internet) | outbound (trusted or authenticated)
    size: int = 0
    message_id: str = ""
    subject: str = ""
    header_from: str = ""
    attempts: int = 0
    next_try: float = 0.0
    last_error: str = ""
    is_bounce: bool = False
    body_8bit: bool = False

    def to_json(self) -> bytes:
        data = asdict(self)
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "Envelope":
        data = json.loads(raw)
        data["recipients"] = [Recipient(**r) for r in data["recipients"]]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def pending(self) -> list:
        return [r for r in self.recipients if r.status == "pending"]


@dataclass(frozen=True)
class FileSpan:
    """Octets of another file, copied into the queue file by the kernel:
    the part of a large message smtpd kept on disk (message_data.py)."""
    path: Path
    offset: int
    length: int


# A message to write: its bytes, or a tuple of parts written one after the
# other (a trace field, the message, a FileSpan), so a large one is never
# joined nor read into memory.
Parts = Union[bytes, tuple]


def new_queue_id() -> str:
    # Time-ordered so a listing by id is roughly a listing by arrival.
    return f"{time.time_ns() // 1000:013X}{secrets.token_hex(3).upper()}"


def fsync_dir(path: Path):
    """A file created or renamed into `path` survives a crash only once the
    directory itself is synced (also used by the mailboxes' Maildir)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Committer:
    """Writer threads that make new messages durable in batches: each
    message file is written and fsync'd, renamed into incoming, and one
    fsync of incoming covers the whole batch (group commit). The event loop
    hands a batch over and gets the answers back in one wake-up each way."""

    BATCH = 64
    THREADS = 4

    def __init__(self, spool: "Spool"):
        self.spool = spool
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"queue-commit-{n}", daemon=True)
                         for n in range(self.THREADS)]
        for thread in self._threads:
            thread.start()

    def submit(self, envelope: "Envelope", message: Parts) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._requests.put((envelope, message, future, loop))
        return future

    def _work(self):
        run_as_background_work()
        while True:
            batch = [self._requests.get()]
            while len(batch) < self.BATCH:
                try:
                    batch.append(self._requests.get_nowait())
                except queue.Empty:
                    break
            outcomes = []
            for envelope, message, future, loop in batch:
                try:
                    target = self.spool.path("incoming", envelope.id)
                    self.spool._place(self.spool._write_tmp(envelope, message), target)
                    outcomes.append((future, loop, target))
                except OSError as error:
                    outcomes.append((future, loop, error))
            try:
                fsync_dir(self.spool.dir("incoming"))
            except OSError as error:
                outcomes = [(f, l, r if isinstance(r, OSError) else error) for f, l, r in outcomes]
            by_loop: dict = {}
            for future, loop, result in outcomes:
                by_loop.setdefault(loop, []).append((future, result))
            for loop, results in by_loop.items():
                loop.call_soon_threadsafe(_settle, results)


def _settle(results):
    for future, result in results:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


@dataclass
class Entry:
    state: str
    envelope: Envelope
    mtime: float = 0.0


class Spool:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self._committer: Committer | None = None

    def create(self):
        for name in STATES + ("tmp",):
            (self.root / name).mkdir(parents=True, exist_ok=True, mode=0o750)

    def dir(self, state: str) -> Path:
        if state not in STATES:
            raise QueueError(f"unknown queue state {state!r}")
        return self.root / state

    def path(self, state: str, qid: str) -> Path:
        if not qid or "/" in qid or qid.startswith("."):
            raise NotInQueue(qid)
        return self.dir(state) / qid

    def space(self) -> tuple[int, int]:
        """Octets the service user may still fill on the queue's file
        system, and the file system's size."""
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize

    # ---- writing ---------------------------------------------------------
    def _write_tmp(self, envelope: Envelope, message: Parts) -> Path:
        """A partial file (the disk filled up, an I/O error) is removed at
        once: it would hold space the queue needs, and its id in tmp/ would
        refuse the next attempt to write the same message (O_EXCL)."""
        tmp = self.tmp / envelope.id
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            # The parts in one gathered write, not one joined buffer: a large
            # message is not copied.
            views = []
            for part in (MAGIC + envelope.to_json() + b"\n", *_parts(message)):
                if isinstance(part, FileSpan):
                    _write_all(fd, views)
                    views = []
                    _copy_span(fd, part)
                elif part:
                    views.append(memoryview(part))
            _write_all(fd, views)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)
        return tmp

    def _place(self, tmp: Path, target: Path):
        try:
            os.rename(tmp, target)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def write(self, envelope: Envelope, message: Parts, state: str = "incoming") -> Path:
        """Durably place a message file (blocking). New mail comes through
        firmware.mail.submit, which builds the envelope."""
        target = self.path(state, envelope.id)
        self._place(self._write_tmp(envelope, message), target)
        fsync_dir(target.parent)
        return target

    async def enqueue(self, envelope: Envelope, message: Parts) -> Path:
        """Durably place a message file in incoming; returns once it would
        survive a crash (submit's path for smtpd)."""
        if self._committer is None:
            self._committer = Committer(self)
        return await self._committer.submit(envelope, message)

    def rewrite(self, envelope: Envelope, from_state: str, to_state: str):
        """Store an updated envelope in to_state and drop the copy in from_state.
        The new copy is durable before the old one goes, so a crash leaves at
        worst both (recovery keeps the newer state)."""
        _, message = self.load(from_state, envelope.id)
        target = self.path(to_state, envelope.id)
        self._place(self._write_tmp(envelope, message), target)
        fsync_dir(target.parent)
        if from_state != to_state:
            os.unlink(self.path(from_state, envelope.id))

    def move(self, qid: str, from_state: str, to_state: str):
        try:
            os.rename(self.path(from_state, qid), self.path(to_state, qid))
        except FileNotFoundError:
            raise NotInQueue(qid) from None
        fsync_dir(self.dir(to_state))

    def move_unsynced(self, qid: str, from_state: str, to_state: str):
        """A rename whose loss in a crash is harmless (incoming -> active:
        the message is simply taken again)."""
        try:
            os.rename(self.path(from_state, qid), self.path(to_state, qid))
        except FileNotFoundError:
            raise NotInQueue(qid) from None

    def remove(self, state: str, qid: str):
        try:
            os.unlink(self.path(state, qid))
        except FileNotFoundError:
            raise NotInQueue(qid) from None

    # ---- reading ---------------------------------------------------------
    def load(self, state: str, qid: str) -> tuple[Envelope, bytes]:
        # The envelope line, then the message in one read: slicing it off
        # the whole file would hold a large message twice.
        try:
            with open(self.path(state, qid), "rb") as handle:
                head = handle.readline()
                head += handle.readline() if head == MAGIC else b""
                envelope = _parse(head, qid, envelope_only=True)[0]
                return envelope, handle.read()
        except FileNotFoundError:
            raise NotInQueue(qid) from None

    def read_envelope(self, state: str, qid: str) -> Envelope:
        try:
            with open(self.path(state, qid), "rb") as handle:
                head = handle.read(_HEADER_READ)
                while b"\n" not in head[len(MAGIC):] and len(head) % _HEADER_READ == 0:
                    more = handle.read(_HEADER_READ)
                    if not more:
                        break
                    head += more
        except FileNotFoundError:
            raise NotInQueue(qid) from None
        return _parse(head, qid, envelope_only=True)[0]

    def locate(self, qid: str) -> str:
        for state in STATES:
            if self.path(state, qid).exists():
                return state
        raise NotInQueue(qid)

    def ids(self, state: str) -> list[str]:
        try:
            return sorted(name for name in os.listdir(self.dir(state)) if not name.startswith("."))
        except FileNotFoundError:
            return []

    def entries(self, states=("incoming", "active", "deferred", "hold", "corrupt")):
        for state in states:
            for qid in self.ids(state):
                try:
                    envelope = self.read_envelope(state, qid)
                except NotInQueue:
                    continue
                except QueueError:
                    envelope = Envelope(id=qid, sender="?", recipients=[], received=0.0,
                                        last_error="unreadable queue file")
                yield Entry(state, envelope)

    def count(self, state: str) -> int:
        return len(self.ids(state))

    # ---- crash recovery ----------------------------------------------------
    def drop_unfinished(self) -> dict:
        """smtpd, before it accepts mail: files left in tmp/ were never
        acknowledged to anyone and are dropped."""
        dropped = 0
        for name in os.listdir(self.tmp):
            os.unlink(self.tmp / name)
            dropped += 1
        return {"tmp_dropped": dropped}

    def requeue_active(self) -> dict:
        """The queue manager, before it starts: whatever was being delivered
        when it stopped goes back to incoming (at-least-once delivery)."""
        report = {"requeued": 0, "duplicates": 0, "corrupt": 0}
        for qid in self.ids("active"):
            elsewhere = [s for s in ("incoming", "deferred", "hold") if self.path(s, qid).exists()]
            if elsewhere:
                os.unlink(self.path("active", qid))
                report["duplicates"] += 1
            else:
                os.rename(self.path("active", qid), self.path("incoming", qid))
                report["requeued"] += 1
        for qid in self.ids("incoming") + self.ids("deferred"):
            state = "incoming" if self.path("incoming", qid).exists() else "deferred"
            try:
                self.read_envelope(state, qid)
            except NotInQueue:
                continue
            except QueueError:
                os.rename(self.path(state, qid), self.path("corrupt", qid))
                report["corrupt"] += 1
        for state in ("incoming", "corrupt"):
            fsync_dir(self.dir(state))
        return report

    def claim(self, state: str, qid: str) -> tuple[Envelope, bytes]:
        """Take a message for delivery: move it to active and read it."""
        self.move_unsynced(qid, state, "active")
        return self.load("active", qid)


def _parts(message: Parts) -> tuple:
    return message if isinstance(message, tuple) else (message,)


def _write_all(fd: int, views: list):
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if views and written:
            views[0] = views[0][written:]


def _copy_span(fd: int, span: FileSpan):
    """copy_file_range where the kernel and file systems allow it (no copy
    through user space), else read and write in pieces."""
    with open(span.path, "rb") as source:
        offset, left = span.offset, span.length
        try:
            while left:
                copied = os.copy_file_range(source.fileno(), fd, left, offset)
                if not copied:
                    raise QueueError(f"{span.path} ended {left} octets early")
                offset += copied
                left -= copied
            return
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
        source.seek(offset)
        while left:
            piece = source.read(min(left, 1024 * 1024))
            if not piece:
                raise QueueError(f"{span.path} ended {left} octets early")
            _write_all(fd, [memoryview(piece)])
            left -= len(piece)


def _unlink_quietly(path: Path):
    # Called while another error is on its way up: that one is the answer.
    try:
        os.unlink(path)
    except OSError:
        pass


def _parse(raw: bytes, qid: str, envelope_only: bool = False) -> tuple[Envelope, bytes]:
    if not raw.startswith(MAGIC):
        raise QueueError(f"{qid}: not a queue file")
    end = raw.find(b"\n", len(MAGIC))
    if end < 0:
        raise QueueError(f"{qid}: truncated queue file")
    try:
        envelope = Envelope.from_json(raw[len(MAGIC):end])
    except (ValueError, TypeError, KeyError) as error:
        raise QueueError(f"{qid}: bad envelope: {error}") from None
    return envelope, b"" if envelope_only else raw[end + 1:]
