"""What the smtpd processes share: open connections per client and in all,
for the connection caps, and the recent messages of the duplicate filter.

Several smtpd processes accept on one listening socket (firmware/run/smtpd_workers.py)
and any of them may get a client's next connection, so the caps and the
duplicate filter must see all of them. They share one anonymous memory
region (a memfd the first process creates and the others inherit) with a
part for each process. A process writes only its own part, and reads all of
them, so no lock is needed: a counter is one aligned 32-bit store, which no
reader sees half-done, and a duplicate entry that a reader catches half-written
fails its checksum and reads as not there.

Counts are per hashed client address, in two tables with different keys; a
client's count is the smaller of its two buckets (a count-min sketch). Another
client can only raise it by colliding in both tables, and the keys are random
at each start, so a stranger cannot aim for that. A count can only be too
high, never too low: a cap may refuse early, never let more in.

The duplicate filter is a table of fixed size in each part: a new entry takes
the place of whatever was in its slot. Losing an entry early only lets a
client's resend be queued twice, as with the filter off; nothing is lost."""

from __future__ import annotations

import collections
import hashlib
import mmap
import os
import struct
import zlib

from .duplicates import DUPLICATE_WINDOW, DuplicateFilter

BUCKETS = 8192                    # per table; two tables per process
DUPLICATE_SLOTS = 32768           # recent messages remembered per process
_HEADER = struct.Struct("<16s16s")  # the two tables' hash keys
_ENTRY = struct.Struct("<16sd32sI4x")  # message digest, when, queue id, checksum
_COUNTS_BYTES = 4 * (1 + 2 * BUCKETS)  # open connections, then the two tables
_PART_BYTES = _COUNTS_BYTES + _ENTRY.size * DUPLICATE_SLOTS


def region_size(processes: int) -> int:
    return _HEADER.size + processes * _PART_BYTES


def create(processes: int) -> int:
    """A new region for this many processes, as a file descriptor to pass on."""
    fd = os.memfd_create("gatebox-smtpd")
    os.ftruncate(fd, region_size(processes))  # zero-filled
    with mmap.mmap(fd, _HEADER.size) as header:
        header[:_HEADER.size] = _HEADER.pack(os.urandom(16), os.urandom(16))
    return fd


class SharedRegion:
    """One process's view: its own part to write, every part to read."""

    def __init__(self, fd: int, processes: int, part: int):
        if not 0 <= part < processes:
            raise ValueError(f"part {part} of {processes}")
        self.processes, self.part = processes, part
        self.map = mmap.mmap(fd, region_size(processes))
        self._keys = _HEADER.unpack_from(self.map, 0)
        self._view = memoryview(self.map)
        self.words = self._view.cast("I")  # the header is 32 bytes: aligned
        self.entries_at = [_HEADER.size + p * _PART_BYTES + _COUNTS_BYTES
                            for p in range(processes)]
        self.clear_own()

    def close(self):
        self.words.release()
        self._view.release()
        self.map.close()

    def clear_own(self):
        """A process restarted in its part starts from nothing: the
        connections and messages of the one before it are gone."""
        start = _HEADER.size + self.part * _PART_BYTES
        self.map[start:start + _PART_BYTES] = bytes(_PART_BYTES)

    def counts_at(self, part: int) -> int:
        """The index in `words` of a part's open connections; its two tables follow."""
        return (_HEADER.size + part * _PART_BYTES) // 4

    def buckets(self, client_ip: str) -> tuple[int, int]:
        first, second = (hashlib.blake2b(client_ip.encode(), digest_size=4, key=key).digest()
                         for key in self._keys)
        return (1 + int.from_bytes(first, "little") % BUCKETS,
                1 + BUCKETS + int.from_bytes(second, "little") % BUCKETS)


class SharedConnections:
    """The caps' connection counts across every smtpd process."""

    def __init__(self, region: SharedRegion):
        self.region = region
        self._words = region.words
        self._own = region.counts_at(region.part)
        self._all = [region.counts_at(p) for p in range(region.processes)]

    def opened(self, client_ip: str):
        words, own = self._words, self._own
        for bucket in self.region.buckets(client_ip):
            words[own + bucket] += 1
        words[own] += 1

    def closed(self, client_ip: str):
        words, own = self._words, self._own
        for bucket in self.region.buckets(client_ip):
            words[own + bucket] = max(0, words[own + bucket] - 1)
        words[own] = max(0, words[own] - 1)

    def from_host(self, client_ip: str) -> int:
        words = self._words
        return min(sum(words[base + bucket] for base in self._all)
                   for bucket in self.region.buckets(client_ip))

    def total(self) -> int:
        words = self._words
        return sum(words[base] for base in self._all)


class SharedDuplicates(DuplicateFilter):
    """DuplicateFilter's answers, from the messages every process remembers."""

    def __init__(self, region: SharedRegion, window: float = DUPLICATE_WINDOW):
        super().__init__(window)
        self.region = region

    @staticmethod
    def _digest(key) -> bytes:
        return hashlib.sha256(repr(key).encode()).digest()[:16]

    def _slot(self, digest: bytes) -> int:
        return int.from_bytes(digest[:4], "little") % DUPLICATE_SLOTS

    def lookup(self, key, now: float):
        digest = self._digest(key)
        offset = self._slot(digest) * _ENTRY.size
        region = self.region.map
        for base in self.region.entries_at:
            raw = region[base + offset:base + offset + _ENTRY.size]
            found, when, qid, check = _ENTRY.unpack(raw)
            if (found == digest and check == zlib.crc32(raw[:_ENTRY.size - 8])
                    and 0 <= now - when <= self.window):
                return qid.rstrip(b"\0").decode("ascii", "replace")
        return None

    def remember(self, key, qid: str, now: float):
        digest = self._digest(key)
        body = _ENTRY.pack(digest, now, qid.encode("ascii")[:32], 0)[:_ENTRY.size - 8]
        at = self.region.entries_at[self.region.part] + self._slot(digest) * _ENTRY.size
        self.region.map[at:at + _ENTRY.size] = body + struct.pack("<I4x", zlib.crc32(body))


class LocalConnections:
    """The same counts for a single smtpd process, in its own memory."""

    def __init__(self):
        self._hosts: collections.Counter = collections.Counter()
        self._total = 0

    def opened(self, client_ip: str):
        self._hosts[client_ip] += 1
        self._total += 1

    def closed(self, client_ip: str):
        self._hosts[client_ip] -= 1
        if self._hosts[client_ip] <= 0:
            del self._hosts[client_ip]
        self._total -= 1

    def from_host(self, client_ip: str) -> int:
        return self._hosts[client_ip]

    def total(self) -> int:
        return self._total
