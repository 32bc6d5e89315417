"""A message's content as DATA brings it in, in bounded memory.

Up to PREFIX octets stay in memory, and most mail is smaller. A larger
message goes to a scratch file in the spool's tmp/ as it arrives, and only
its first PREFIX octets stay in memory: the header block and the start of
the body, which is what the header checks, the content rules and Bayes read
(Proxmox Mail Gateway scans the same 256 KiB). The few consumers that need
every octet (the virus scan streams the file; DKIM verification and
signing, and the decoding of MIME parts, cannot) read the whole message
through whole(), one message at a time per process, so twenty large
messages at once cost one in memory, not twenty.

The scratch file is never acknowledged to anyone: the queue file is written
from it (the kernel copies the octets, see queue.FileSpan) and it is
removed when DATA is answered; a scratch file left by a crash is removed
with the rest of tmp/ when smtpd starts."""

from __future__ import annotations

import asyncio
import os
import secrets
import weakref
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

PREFIX = 256 * 1024
WRITE_CHUNK = 64 * 1024
READ_CHUNK = 1024 * 1024
SCRATCH_PREFIX = "data-"

# One whole large message in memory at a time (see whole()), per event loop:
# a semaphore belongs to the loop it first waited in.
_whole_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class Received:
    """The content of one DATA, unstuffed."""
    prefix: bytes               # the whole message when `path` is None, else its first PREFIX octets
    size: int                   # octets of the message
    path: Path | None = None    # the whole message, when it is larger than PREFIX
    bare_line_endings: bool = False   # a LF or CR not part of a CRLF
    eight_bit: bool = False

    def discard(self):
        if self.path is not None:
            _unlink_quietly(self.path)
            self.path = None


class DataSink:
    """Takes DATA's unstuffed stream chunk by chunk. The line-ending and
    8-bit facts the checks need are counted on the way, since no one holds
    the whole message to count them later."""

    def __init__(self, scratch_dir: Path, prefix: int = PREFIX):
        self._dir = Path(scratch_dir)
        self._limit = prefix
        self._buffer = bytearray()
        self._prefix = b""
        self._file = None
        self._path: Path | None = None
        self.size = 0
        self._lf = self._cr = self._crlf = 0
        self._ends_cr = False
        self._eight_bit = False

    def add(self, chunk: bytes):
        self._lf += chunk.count(b"\n")
        self._cr += chunk.count(b"\r")
        self._crlf += chunk.count(b"\r\n")
        if self._ends_cr and chunk[:1] == b"\n":
            self._crlf += 1  # a CRLF split between two reads
        self._ends_cr = chunk[-1:] == b"\r"
        if not self._eight_bit and not chunk.isascii():
            self._eight_bit = True
        self.size += len(chunk)
        self._buffer += chunk
        if self._file is None:
            if len(self._buffer) > self._limit:
                self._spill()
        elif len(self._buffer) >= WRITE_CHUNK:
            self._flush()

    def _spill(self):
        self._prefix = bytes(self._buffer[:self._limit])
        path = self._dir / f"{SCRATCH_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._path = path
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._flush()

    def _flush(self):
        view = memoryview(self._buffer)
        try:
            while view:
                written = self._file.write(view)
                view = view[written:]
        finally:
            view.release()
        del self._buffer[:]

    def finish(self) -> Received:
        """The content; the caller owns the scratch file from here on
        (Received.discard)."""
        bare = self._lf != self._crlf or self._cr != self._crlf
        if self._file is None:
            prefix, path = bytes(self._buffer), None
        else:
            try:
                self._flush()
            finally:
                self._file.close()
                self._file = None
            prefix, path = self._prefix, self._path
        self._buffer = bytearray()
        self._path = None
        return Received(prefix, self.size, path, bare, self._eight_bit)

    def discard(self):
        """The data is not wanted (past a limit, or the client went away)."""
        self._buffer = bytearray()
        self._prefix = b""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            _unlink_quietly(self._path)
            self._path = None


def read_rest(path: Path, offset: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read()


def chunks(path: Path, size: int = READ_CHUNK):
    """The file's octets in pieces, for a consumer that streams (clamd)."""
    with open(path, "rb") as handle:
        while piece := handle.read(size):
            yield piece


@asynccontextmanager
async def whole(head: bytes, path: Path | None, prefix_length: int):
    """The whole message: `head` (the prefix, or what was made of it),
    then the file's octets after the first `prefix_length`. In memory
    for the duration of the block, one message at a time per process."""
    if path is None:
        yield head
        return
    loop = asyncio.get_running_loop()
    slot = _whole_slots.get(loop)
    if slot is None:
        slot = _whole_slots[loop] = asyncio.Semaphore(1)
    async with slot:
        rest = await asyncio.to_thread(read_rest, path, prefix_length)
        message = head + rest
        del rest
        try:
            yield message
        finally:
            del message


def _unlink_quietly(path: Path):
    try:
        os.unlink(path)
    except OSError:
        pass
