"""DKIM signatures (RFC 6376) verified with dkimpy against keys fetched
beforehand (dns_txt.py).

Each signature gets one RFC 8601 result:
  pass       it verifies;
  fail       the key is there but the signature or the body hash does not match;
  permerror  the signature is malformed or expired, or the key is missing,
             malformed, revoked (empty p=) or too short;
  temperror  the key could not be fetched for the time being;
  policy     not verified: the message is larger than MAX_MESSAGE_OCTETS.
At most MAX_SIGNATURES signatures are looked at, the topmost first: a
message with a hundred signatures must not cost a hundred key lookups."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from . import dns_txt
from .headers import values

MAX_SIGNATURES = 5
MAX_MESSAGE_OCTETS = 16 * 1024 * 1024
MIN_KEY_BITS = 1024

_quiet = logging.getLogger("gatebox.antispam.dkimpy")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


@dataclass(frozen=True)
class Signature:
    index: int                  # dkimpy's idx: the n-th DKIM-Signature from the top
    domain: str                 # d=, lower case ("" when unreadable)
    selector: str               # s=
    b: str                      # the first characters of b=, to tell signatures apart
    tags_ok: bool

    @property
    def key_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


@dataclass(frozen=True)
class DkimResult:
    signature: Signature
    result: str
    reason: str = ""


def signatures(message: bytes) -> list[Signature]:
    found = []
    for index, value in enumerate(values(message, "dkim-signature")[:MAX_SIGNATURES]):
        try:
            tags = parse_tag_value(b"".join(value.split()))
            domain = dns_txt.normal_name(tags.get(b"d", b""))
            selector = dns_txt.normal_name(tags.get(b"s", b""))
            b = tags.get(b"b", b"")[:8].decode("ascii", "replace")
            ok = bool(domain and selector) and dns_txt.valid_name(f"{selector}._domainkey.{domain}")
        except (InvalidTagValueList, ValueError, UnicodeError):
            domain, selector, b, ok = "", "", "", False
        found.append(Signature(index, domain, selector, b, ok))
    return found


def key_names(sigs: list[Signature]) -> list[str]:
    return [s.key_name for s in sigs if s.tags_ok]


def verify(message: bytes, sigs: list[Signature], fetched: dict) -> list[DkimResult]:
    """Runs in a worker thread: CPU only, DNS comes from `fetched`."""
    if not sigs:
        return []
    if len(message) > MAX_MESSAGE_OCTETS:
        return [DkimResult(s, "policy", f"not verified: the message is over "
                                        f"{MAX_MESSAGE_OCTETS // (1024 * 1024)} MiB") for s in sigs]
    try:
        checker = dkim.DKIM(message, logger=_quiet, minkey=MIN_KEY_BITS)
    except dkim.DKIMException as error:
        return [DkimResult(s, "permerror", f"message unreadable: {error}") for s in sigs]
    dnsfunc = dns_txt.served(fetched)
    return [_one(checker, s, fetched, dnsfunc) for s in sigs]


def _one(checker, sig: Signature, fetched: dict, dnsfunc) -> DkimResult:
    if not sig.tags_ok:
        return DkimResult(sig, "permerror", "signature without usable d= and s= tags")
    found = fetched.get(sig.key_name)
    if found is None or found.failed:
        return DkimResult(sig, "temperror", found.failure if found else "key not fetched")
    record = dns_txt.key_record(found)
    if record is None:
        return DkimResult(sig, "permerror", f"no key at {sig.key_name}")
    try:
        dkim.evaluate_pk(sig.key_name, record)
    except (dkim.DKIMException, ValueError, TypeError) as error:
        return DkimResult(sig, "permerror", f"unusable key at {sig.key_name}: {error}")
    try:
        good = checker.verify(idx=sig.index, dnsfunc=dnsfunc)
    except dkim.ValidationError as error:
        # dkimpy raises for a body hash that does not match: the signature
        # is readable and wrong, a fail like a bad b=.
        if "body hash mismatch" in str(error):
            return DkimResult(sig, "fail", "body hash does not match (the body was changed)")
        return DkimResult(sig, "permerror", str(error))
    except dkim.DKIMException as error:
        return DkimResult(sig, "permerror", str(error))
    except (ValueError, TypeError, IndexError, KeyError) as error:
        return DkimResult(sig, "permerror", f"{type(error).__name__}: {error}")
    if good:
        return DkimResult(sig, "pass")
    return DkimResult(sig, "fail", "signature or body hash does not match")
