"""DKIM signatures on outgoing mail (relaxed/relaxed, RFC 6376), for mail
whose From address is in a local domain with active keys: the RSA
signature first, then the Ed25519 one (RFC 8463).

smtpd calls the signer for mail from trusted or signed-in clients once it
is accepted (firmware/mail/smtpd.py, Handler.signed); a signer that fails
leaves the message unsigned, never refused. Keys are read again when the
settings generation moves (a generate, rotate or remove moves it)."""

from __future__ import annotations

import base64
import logging

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from . import keys
from .dmarc import author_domain
from .headers import fields

SIGN = "antispam.dkim_sign"
# The fields a receiver shows or threads by; From is signed once more than
# it occurs, so that a From added on the way breaks the signature.
SIGNED_FIELDS = ("from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
                 "mime-version", "content-type", "content-transfer-encoding", "in-reply-to",
                 "references", "list-id", "list-unsubscribe")

log = logging.getLogger("gatebox.antispam")
_quiet = logging.getLogger("gatebox.antispam.dkimpy")


class _OpenSslRsaDKIM(dkim.DKIM):
    """dkimpy's signing, with the RSA operation done by OpenSSL. dkimpy's
    own is pure Python without the CRT, some 30 ms per message for a 2048
    bit key on the thread that serves SMTP clients; OpenSSL takes about a
    millisecond. The signed data, the fields and their folding are
    dkimpy's; PKCS #1 v1.5 signatures are deterministic, so the result is
    the same signature dkimpy would have made."""

    rsa_key: rsa.RSAPrivateKey | None = None

    def gen_header(self, fields, include_headers, canon_policy, header_name, pk,
                   standardize=False):
        if self.signature_algorithm != b"rsa-sha256" or self.rsa_key is None or standardize:
            return super().gen_header(fields, include_headers, canon_policy, header_name, pk,
                                      standardize)
        value = dkim.fold(b"; ".join(b"=".join(x) for x in fields), namelen=len(header_name),
                          linesep=b"\r\n")
        value = dkim.RE_BTAG.sub(b"\\1", value)
        hasher = dkim.HashThrough(self.hasher())
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkim.hash_headers(hasher, canon_policy, headers, include_headers,
                                                (header_name, b" " + value), dict(fields))
        signature = self.rsa_key.sign(hasher.digest(), padding.PKCS1v15(),
                                      utils.Prehashed(hashes.SHA256()))
        fields = [(b"b", base64.b64encode(signature)) if name == b"b" else (name, tag)
                  for name, tag in fields]
        value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        return dkim.fold(value, namelen=len(header_name), linesep=self.linesep)


class Signer:
    def __init__(self, store):
        self.store = store
        self._generation = object()
        self._by_domain: dict[str, list[tuple]] = {}

    def __repr__(self):
        return "<DKIM signer>"

    def _keys(self, settings) -> dict:
        generation = getattr(settings, "generation", None)
        if generation is None or generation != self._generation:
            by_domain: dict = {}
            for key in keys.keys(self.store):
                if not key.active:
                    continue
                try:
                    private = keys.private_key_bytes(self.store, key)
                    loaded = (serialization.load_pem_private_key(private, password=None)
                              if key.algorithm == "rsa" else None)
                    if loaded is not None and not isinstance(loaded, rsa.RSAPrivateKey):
                        raise ValueError(f"{key.key_file} does not hold an RSA key")
                except (OSError, ValueError, TypeError) as error:
                    log.error("DKIM key %s of %s unusable, not signing with it: %s",
                              key.selector, key.domain, error)
                    continue
                by_domain.setdefault(key.domain, []).append((key, private, loaded))
            for found in by_domain.values():
                found.sort(key=lambda entry: keys.ALGORITHMS.index(entry[0].algorithm))
            self._by_domain, self._generation = by_domain, generation
        return self._by_domain

    def __call__(self, message: bytes, ctx) -> bytes:
        if not ctx.settings[SIGN]:
            return b""
        domain, _why = author_domain(message)
        if not domain:
            return b""
        pairs = self._keys(ctx.settings).get(domain)
        if not pairs:
            return b""
        present = {name for name, _ in fields(message)}
        include = [name.encode() for name in SIGNED_FIELDS if name in present] + [b"from"]
        added = b""
        for key, private, loaded in pairs:
            algorithm = b"rsa-sha256" if key.algorithm == "rsa" else b"ed25519-sha256"
            signer = _OpenSslRsaDKIM(message, logger=_quiet, signature_algorithm=algorithm)
            signer.rsa_key = loaded
            added += signer.sign(key.selector.encode(), domain.encode(), private,
                                 canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
        return added
