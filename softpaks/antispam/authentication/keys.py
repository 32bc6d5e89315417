"""DKIM signing keys, made on the box, one pair of selectors per local
domain: an RSA 2048 key and an Ed25519 key (RFC 8463), the second
signature for receivers that read it.

The private keys live in DATA/antispam/dkim/ (0600, written durably); the
table antispam_dkim_keys names each key's file (a bare file name, never a
path) and holds its public half for the DNS record.

Rotation makes a new pair under a new date-based selector and retires the
old one: it no longer signs, but its record must stay in DNS until mail
signed with it has been delivered and read, so it is kept until the
administrator removes it."""

from __future__ import annotations

import base64
import datetime
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from firmware.config import transaction
from firmware.config.types import is_hostname
from firmware.mail import route
from firmware.system.durable import write_atomically

from . import dns_txt

ALGORITHMS = ("rsa", "ed25519")          # signing order
RSA_BITS = 2048
SELECTOR_SUFFIX = {"rsa": "r", "ed25519": "e"}
DNS_STRING = 255

_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_KEY_FILE = re.compile(r"^[a-z0-9.-]{1,300}\.pem\Z")


class KeyProblem(ValueError):
    """A key change refused; the text is meant for the administrator."""


@dataclass(frozen=True)
class Key:
    domain: str
    selector: str
    algorithm: str
    key_file: str
    public_key: str
    created: float
    retired: float | None = None

    @property
    def active(self) -> bool:
        return self.retired is None

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record_value(self) -> str:
        return f"v=DKIM1; k={self.algorithm}; p={self.public_key}"

    @property
    def record_strings(self) -> list[str]:
        """The value as DNS character-strings of at most 255 octets."""
        value = self.record_value
        return [value[i:i + DNS_STRING] for i in range(0, len(value), DNS_STRING)]

    @property
    def zone_line(self) -> str:
        strings = " ".join(f'"{s}"' for s in self.record_strings)
        return f"{self.record_name}. IN TXT ( {strings} )"


def key_dir(store) -> Path:
    return Path(store.data_dir) / "antispam" / "dkim"


def _domain(store, text: str, must_be_local: bool = True) -> str:
    domain = str(text or "").strip().rstrip(".").lower()
    if not is_hostname(domain) or "." not in domain:
        raise KeyProblem(f"'{str(text)[:60]}' is not a domain such as example.com")
    if must_be_local:
        ours = route.local_domains(store.snapshot())
        if domain not in ours:
            raise KeyProblem(f"'{domain}' is not a local domain of this box (local domains: "
                             f"{', '.join(sorted(d for d in ours if d != '*')) or 'none'})")
    return domain


def keys(store, domain: str | None = None) -> list[Key]:
    query = ("SELECT domain, selector, algorithm, key_file, public_key, created, retired "
             "FROM antispam_dkim_keys")
    args = []
    if domain is not None:
        query += " WHERE domain = ?"
        args.append(domain.strip().rstrip(".").lower())
    rows = store.db.execute(query + " ORDER BY domain, retired IS NOT NULL, created DESC, "
                                    "algorithm DESC", args)
    return [Key(*row) for row in rows]


def active_keys(store, domain: str) -> list[Key]:
    found = [k for k in keys(store, domain) if k.active]
    return sorted(found, key=lambda k: ALGORITHMS.index(k.algorithm)
                  if k.algorithm in ALGORITHMS else 99)


def _new_selector(store, domain: str, now: float) -> str:
    base = "gb" + datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y%m%d")
    taken = {k.selector for k in keys(store, domain)}
    for n in range(1, 100):
        stem = base if n == 1 else f"{base}{n}"
        if not any(stem + suffix in taken for suffix in SELECTOR_SUFFIX.values()):
            return stem
    raise KeyProblem(f"too many selectors for {domain} today; remove old ones first")


def _make(algorithm: str) -> tuple[bytes, str]:
    """(private key PEM, public key base64 for p=)."""
    if algorithm == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        public = private.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
    return pem, base64.b64encode(public).decode("ascii")


def _write_keys(store, domain: str, stem: str, now: float) -> list[Key]:
    directory = key_dir(store)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    made = []
    for algorithm in ALGORITHMS:
        selector = stem + SELECTOR_SUFFIX[algorithm]
        pem, public = _make(algorithm)
        name = f"{domain}.{selector}.pem"
        write_atomically(directory / name, pem, mode=0o600)
        made.append(Key(domain, selector, algorithm, name, public, now))
    return made


def _insert(store, made: list[Key]):
    for key in made:
        store.db.execute("INSERT INTO antispam_dkim_keys(domain, selector, algorithm, key_file, "
                         "public_key, created, retired) VALUES(?, ?, ?, ?, ?, ?, NULL)",
                         [key.domain, key.selector, key.algorithm, key.key_file, key.public_key,
                          key.created])


def generate(store, domain: str, actor: str = "system", *, rotate: bool = False) -> list[Key]:
    """A new pair of keys for a local domain. Without rotate, refused when
    the domain already has active keys."""
    domain = _domain(store, domain)
    now = time.time()
    current = active_keys(store, domain)
    if current and not rotate:
        raise KeyProblem(f"{domain} already has keys (selectors "
                         f"{', '.join(k.selector for k in current)}); rotate them instead")
    if rotate and not current:
        raise KeyProblem(f"{domain} has no active keys to rotate; generate them first")
    made = _write_keys(store, domain, _new_selector(store, domain, now), now)
    try:
        with transaction(store.db):
            if rotate:
                store.db.execute("UPDATE antispam_dkim_keys SET retired = ? WHERE domain = ? "
                                 "AND retired IS NULL", [now, domain])
            _insert(store, made)
            what = "rotate" if rotate else "generate"
            store.audit(actor, f"{what} DKIM keys for {domain}", ", ".join(
                k.selector for k in current), ", ".join(k.selector for k in made))
            store._bump_generation()
    except Exception:
        for key in made:
            _unlink(store, key.key_file)
        raise
    return made


def rotate(store, domain: str, actor: str = "system") -> list[Key]:
    return generate(store, domain, actor, rotate=True)


def remove(store, domain: str, selector: str, actor: str = "system") -> Key:
    """Remove a retired selector (its key file too)."""
    domain = _domain(store, domain, must_be_local=False)
    selector = str(selector or "").strip().lower()
    found = [k for k in keys(store, domain) if k.selector == selector]
    if not found:
        raise KeyProblem(f"{domain} has no selector '{selector[:64]}'")
    key = found[0]
    if key.active:
        raise KeyProblem(f"selector {selector} of {domain} still signs mail; rotate the keys "
                         "first, then remove the old selector once its DNS record may go")
    with transaction(store.db):
        store.db.execute("DELETE FROM antispam_dkim_keys WHERE domain = ? AND selector = ?",
                         [domain, selector])
        store.audit(actor, f"remove DKIM selector {selector} of {domain}")
        store._bump_generation()
    _unlink(store, key.key_file)
    return key


def _unlink(store, name: str):
    if _KEY_FILE.match(name) and "/" not in name and not name.startswith("."):
        try:
            os.unlink(key_dir(store) / name)
        except FileNotFoundError:
            pass


def private_key_bytes(store, key: Key) -> bytes:
    """What dkimpy signs with: the RSA key as PEM, the Ed25519 key as its
    32-octet seed in base64 (RFC 8463)."""
    if not _KEY_FILE.match(key.key_file) or "/" in key.key_file or key.key_file.startswith("."):
        raise KeyProblem(f"key file name {key.key_file[:60]!r} is not one this box writes")
    pem = (key_dir(store) / key.key_file).read_bytes()
    if key.algorithm == "rsa":
        return pem
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        raise KeyProblem(f"{key.key_file} does not hold an Ed25519 key")
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    return base64.b64encode(raw)


def valid_selector(text: str) -> bool:
    return bool(_SELECTOR.match(text or ""))


@dataclass(frozen=True)
class Published:
    """What DNS holds at a key's record name, compared with the key."""
    state: str          # match | differs | missing | error
    detail: str


async def published(key: Key, resolver, settings) -> Published:
    """Asked through the box's resolver, as receivers ask theirs."""
    found = await dns_txt.txt(resolver, settings, key.record_name)
    if found.failed:
        return Published("error", found.failure)
    record = dns_txt.key_record(found)
    if record is None:
        return Published("missing", f"no TXT record at {key.record_name}")
    text = record.decode("ascii", "replace")
    tags = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    if tags.get("p") == key.public_key and tags.get("k", "rsa").lower() == key.algorithm:
        return Published("match", f"{key.record_name} holds this key")
    return Published("differs", f"{key.record_name} holds another value: {text[:120]}")
