"""Signing keys and license issuing."""

from __future__ import annotations

import datetime
import os
import re
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.licensing import payload, textform
from firmware.licensing.trust import signer_id

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def keygen(out_dir: str | os.PathLike, name: str = "vendor") -> tuple[Path, Path]:
    """Write NAME.key (private, mode 600, never overwritten) and NAME.pub."""
    if not _NAME.match(name):
        raise ValueError("key name: letters, digits, '.', '_' and '-' only")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    key = Ed25519PrivateKey.generate()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def parse_grant(text: str) -> tuple[str, datetime.date | None]:
    """'mailserver=2027-12-31', or 'mailserver' for a perpetual grant."""
    softpak, _, date = text.partition("=")
    softpak = softpak.strip().lower()
    if not payload.SOFTPAK_ID.match(softpak):
        raise ValueError(f"SoftPak id {softpak!r}: lower-case letters, digits and _")
    if not date.strip():
        return softpak, None
    try:
        return softpak, datetime.date.fromisoformat(date.strip())
    except ValueError:
        raise ValueError(f"{text!r}: the expiry date must be YYYY-MM-DD") from None


def issue(private_key: Ed25519PrivateKey, serial: str, grants: dict,
          issued: datetime.date | None = None, wrap: bool = False) -> str:
    unsigned = payload.License(signer_id=signer_id(private_key.public_key()),
                               key_id=secrets.token_bytes(8),
                               issued=issued or datetime.date.today(),
                               serial=serial.strip(), grants=dict(grants))
    body = payload.pack_unsigned(unsigned)
    return textform.encode(body + private_key.sign(body), wrap=wrap)
