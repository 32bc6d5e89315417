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
import collections
import errno
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Union

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
        # What asdict() gives for these flat fields, without its deep copy of
        # every value (a twentieth of smtpd's CPU per message).
        data = dict(self.__dict__)
        data["recipients"] = [dict(r.__dict__) for r in self.recipients]
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
    """smtpd's side of the group commit. The event loop writes each new
    message under tmp/ (in a thread when it is large) and hands the open file
    to the commit process (firmware/mail/commit_worker.py), which fsyncs the
    files of a batch, renames them into incoming and fsyncs incoming once for
    all of them. Its answers come back on the same socket, read by the loop.

    When the process dies, the messages it held are answered with an error
    (the client hears a temporary failure and sends again) and the next
    message starts a new one."""

    # Up to this size a message is written on the event loop: a page-cache
    # write of a few KiB costs less than the hand-over to a thread.
    INLINE_LIMIT = 256 * 1024

    def __init__(self, spool: "Spool"):
        self.spool = spool
        self.loop = asyncio.get_running_loop()
        self._pending: dict[str, tuple[asyncio.Future, Path]] = {}
        self._unsent: collections.deque = collections.deque()
        self._sock: socket.socket | None = None
        self._writing = False
        self.process: subprocess.Popen | None = None
        self.batches = 0  # answers read: one per batch the process committed

    async def submit(self, envelope: "Envelope", message: Parts) -> Path:
        if _inline(message, self.INLINE_LIMIT):
            fd, tmp = self.spool._write_unsynced(envelope, message)
        else:
            fd, tmp = await self.loop.run_in_executor(None, self.spool._write_unsynced,
                                                      envelope, message)
        future = self.loop.create_future()
        self._pending[envelope.id] = (future, tmp)
        self._unsent.append((envelope.id, fd))
        self.start()
        self._send()
        return await future

    def start(self):
        """Start the commit process if none runs: the first time, or again
        after a failure stopped the last one."""
        if self._sock is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "firmware.mail.commit_worker", str(self.spool.root),
                 str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        except OSError as error:
            ours.close()
            self._fail_all(error)
            return
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self.loop.add_reader(ours.fileno(), self._read_answers)

    def _send(self):
        while self._unsent and self._sock is not None:
            qid, fd = self._unsent[0]
            try:
                socket.send_fds(self._sock, [qid.encode("ascii")], [fd])
            except BlockingIOError:
                if not self._writing:
                    self.loop.add_writer(self._sock.fileno(), self._send)
                    self._writing = True
                return
            except OSError as error:
                self._worker_gone(error)
                return
            self._unsent.popleft()
            os.close(fd)
        if self._writing and self._sock is not None:
            self.loop.remove_writer(self._sock.fileno())
            self._writing = False

    def _read_answers(self):
        while self._sock is not None:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as error:
                self._worker_gone(error)
                return
            if not data:
                self._worker_gone(None)
                return
            self.batches += 1
            for line in data.decode("ascii", "replace").splitlines():
                qid, _, code = line.partition(" ")
                self._settle(qid, int(code) if code.isdigit() else errno.EIO)

    def _settle(self, qid: str, code: int):
        entry = self._pending.pop(qid, None)
        if entry is None:
            return
        future, tmp = entry
        if code:
            _unlink_quietly(tmp)
        if future.done():
            return
        if code:
            future.set_exception(OSError(code, os.strerror(code)))
        else:
            future.set_result(self.spool.path("incoming", qid))

    def _worker_gone(self, error: OSError | None):
        self._close_socket()
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            status = self.process.returncode
            self.process = None
        else:
            status = None
        self._fail_all(OSError(errno.EIO, f"the queue's commit process stopped "
                                          f"(status {status}, {error or 'end of file'})"))

    def _fail_all(self, error: OSError):
        while self._unsent:
            os.close(self._unsent.popleft()[1])
        pending, self._pending = self._pending, {}
        for future, tmp in pending.values():
            # Renamed into incoming already, the message is delivered once
            # more than the client was told; left in tmp, it would be dropped.
            _unlink_quietly(tmp)
            if not future.done():
                future.set_exception(error)

    def _close_socket(self):
        if self._sock is None:
            return
        if not self.loop.is_closed():
            self.loop.remove_reader(self._sock.fileno())
            if self._writing:
                self.loop.remove_writer(self._sock.fileno())
        self._writing = False
        self._sock.close()
        self._sock = None

    def close(self):
        """The process exits when its socket closes."""
        self._close_socket()
        self._fail_all(OSError(errno.ESHUTDOWN, "the queue is shutting down"))
        if self.process is not None:
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def _inline(message: Parts, limit: int) -> bool:
    size = 0
    for part in _parts(message):
        if isinstance(part, FileSpan):
            return False
        size += len(part)
    return size <= limit


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
        fd, tmp = self._write_unsynced(envelope, message)
        try:
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)
        return tmp

    def _write_unsynced(self, envelope: Envelope, message: Parts) -> tuple[int, Path]:
        """The message under tmp/, its file still open and not yet synced.
        A partial file (the disk filled up, an I/O error) is removed at
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
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        return fd, tmp

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
        return await self._committer_here().submit(envelope, message)

    def start_committer(self):
        """Start the commit process before the first message rather than with
        it: an smtpd process is at its full size before it serves anyone (each
        of several would otherwise grow by a process under its first load), and
        the first client does not wait for an interpreter to start."""
        self._committer_here().start()

    def _committer_here(self) -> Committer:
        loop = asyncio.get_running_loop()
        if self._committer is None or self._committer.loop is not loop:
            self.close()
            self._committer = Committer(self)
        return self._committer

    def close(self):
        """Stop the commit process, if enqueue or start_committer started one."""
        if self._committer is not None:
            self._committer.close()
            self._committer = None

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
