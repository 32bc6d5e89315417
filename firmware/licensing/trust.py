"""The vendor public keys this firmware trusts.

They ship read-only inside the package (trusted_keys/*.pub). Test and
development images may name extra public-key files in GATEBOX_VENDOR_PUBKEYS
(separated by the path separator); nothing reachable from the CLI or the
web admin adds one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PACKAGED_KEYS = Path(__file__).parent / "trusted_keys"
ENV_VAR = "GATEBOX_VENDOR_PUBKEYS"


def signer_id(public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:4]


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return key


def trusted_keys() -> dict[bytes, Ed25519PublicKey]:
    """signer id -> public key. Read on every call: cheap, and a test may
    change the environment between calls."""
    paths = sorted(PACKAGED_KEYS.glob("*.pub"))
    paths += [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    keys = {}
    for path in paths:
        key = load_public_key(path)
        keys[signer_id(key)] = key
    return keys
