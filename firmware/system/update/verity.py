"""Checks a verity bundle's payload against its signed dm-verity hash tree.

`rauc info` verifies the signature over the manifest only; in the verity
format the payload is checked by the kernel block by block while it is being
installed, so a changed byte would surface as an I/O error halfway through
writing the slot. Hashing the payload here first refuses it before anything
is written. The layout is RAUC's: payload, hash tree, CMS signature, and the
signature's size as 8 big-endian bytes; the tree is dm-verity format 1
(SHA-256, 4096-byte blocks, salt before each block, top level first)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

BLOCK = 4096
DIGEST = 32


class VerityMismatch(Exception):
    pass


def payload_size(path: Path, hash_tree_size: int) -> int:
    size = path.stat().st_size
    with open(path, "rb") as bundle:
        bundle.seek(size - 8)
        signature_size = struct.unpack(">Q", bundle.read(8))[0]
    data_size = size - 8 - signature_size - hash_tree_size
    if data_size <= 0 or data_size % BLOCK:
        raise VerityMismatch("the payload does not fill whole blocks")
    return data_size


def check_payload(path: Path, salt_hex: str, root_hash_hex: str, hash_tree_size: int) -> None:
    """Raises VerityMismatch unless payload and stored tree match the signed root hash."""
    salt = bytes.fromhex(salt_hex)
    data_size = payload_size(path, hash_tree_size)
    with open(path, "rb") as bundle:
        level = [hashlib.sha256(salt + bundle.read(BLOCK)).digest()
                 for _ in range(data_size // BLOCK)]
        stored_tree = bundle.read(hash_tree_size)
    levels = []
    while True:
        blocks = _pack(level)
        levels.append(b"".join(blocks))
        if len(blocks) == 1:
            break
        level = [hashlib.sha256(salt + block).digest() for block in blocks]
    root = hashlib.sha256(salt + levels[-1]).hexdigest()
    if root != root_hash_hex.lower():
        raise VerityMismatch("the payload does not match the signed hash")
    if b"".join(reversed(levels)) != stored_tree:
        raise VerityMismatch("the hash tree does not match the payload")


def _pack(digests: list[bytes]) -> list[bytes]:
    per_block = BLOCK // DIGEST
    blocks = []
    for start in range(0, len(digests), per_block):
        block = b"".join(digests[start:start + per_block])
        blocks.append(block + b"\0" * (BLOCK - len(block)))
    return blocks
