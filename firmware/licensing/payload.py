"""The signed statement inside a license key, as compact bytes.

    version      1 byte   (1)
    signer id    4 bytes  first bytes of SHA-256 of the vendor public key
    key id       8 bytes  random, names the key on the box
    issued       2 bytes  days since 1970-01-01
    serial       1 byte length + UTF-8
    grants       1 byte count, then per SoftPak:
                   1 byte length + ASCII id, 2 bytes expiry (days since
                   1970-01-01, 0 = perpetual)
    signature    64 bytes Ed25519 over everything above
"""

from __future__ import annotations

import datetime
import re
import struct
from dataclasses import dataclass, field

from .errors import MalformedKey

VERSION = 1
SIGNATURE_SIZE = 64
EPOCH = datetime.date(1970, 1, 1)
SOFTPAK_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class License:
    signer_id: bytes
    key_id: bytes
    issued: datetime.date
    serial: str
    grants: dict = field(default_factory=dict)  # softpak id -> expiry date, or None if perpetual
    signature: bytes = b""

    @property
    def id(self) -> str:
        return self.key_id.hex().upper()

    def signed_bytes(self) -> bytes:
        return pack_unsigned(self)


def pack_unsigned(lic: License) -> bytes:
    serial = lic.serial.encode()
    if not lic.serial or len(serial) > 255:
        raise ValueError("serial must be 1 to 255 bytes")
    if len(lic.signer_id) != 4 or len(lic.key_id) != 8:
        raise ValueError("signer id is 4 bytes and key id 8 bytes")
    if not lic.grants or len(lic.grants) > 255:
        raise ValueError("a key grants 1 to 255 SoftPaks")
    out = [struct.pack(">B4s8sH", VERSION, lic.signer_id, lic.key_id, _days(lic.issued)),
           bytes([len(serial)]), serial, bytes([len(lic.grants)])]
    for softpak, expiry in sorted(lic.grants.items()):
        if not SOFTPAK_ID.match(softpak):
            raise ValueError(f"SoftPak id {softpak!r}: lower-case letters, digits and _")
        out += [bytes([len(softpak)]), softpak.encode(),
                struct.pack(">H", 0 if expiry is None else _days(expiry))]
    return b"".join(out)


def unpack(raw: bytes) -> License:
    reader = _Reader(raw)
    version = reader.take(1)[0]
    if version != VERSION:
        raise MalformedKey(f"key format version {version} is not understood by this firmware")
    signer_id, key_id = reader.take(4), reader.take(8)
    issued = _date(struct.unpack(">H", reader.take(2))[0])
    serial = reader.text()
    grants = {}
    for _ in range(reader.take(1)[0]):
        softpak = reader.text()
        if not SOFTPAK_ID.match(softpak):
            raise MalformedKey(f"SoftPak id {softpak!r} is not valid")
        days = struct.unpack(">H", reader.take(2))[0]
        grants[softpak] = None if days == 0 else _date(days)
    if not grants:
        raise MalformedKey("the key grants no SoftPak")
    signature = reader.take(SIGNATURE_SIZE)
    if reader.remaining:
        raise MalformedKey("the key has extra data at the end")
    return License(signer_id, key_id, issued, serial, grants, signature)


class _Reader:
    def __init__(self, raw: bytes):
        self.raw, self.offset = raw, 0

    @property
    def remaining(self) -> int:
        return len(self.raw) - self.offset

    def take(self, size: int) -> bytes:
        if self.remaining < size:
            raise MalformedKey("the key is too short; was it copied completely?")
        chunk = self.raw[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def text(self) -> str:
        try:
            return self.take(self.take(1)[0]).decode()
        except UnicodeDecodeError:
            raise MalformedKey("the key holds text that is not UTF-8") from None


def _days(day: datetime.date) -> int:
    days = (day - EPOCH).days
    if not 1 <= days <= 0xFFFF:
        raise ValueError(f"date {day} is out of range")
    return days


def _date(days: int) -> datetime.date:
    return EPOCH + datetime.timedelta(days=days)
