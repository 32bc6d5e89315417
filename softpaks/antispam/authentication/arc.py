"""ARC (RFC 8617): whether the chain of ARC sets an intermediary added
verifies, by dkimpy's arc_verify against keys fetched beforehand.

Only the chain's validity is recorded (arc=pass, fail or none); the box
does not add ARC sets of its own."""

from __future__ import annotations

import logging

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from . import dns_txt
from .dkim_verify import MAX_MESSAGE_OCTETS, MIN_KEY_BITS
from .headers import fields

ARC_FIELDS = ("arc-seal", "arc-message-signature")
# RFC 8617 5.1.1.5: more than 50 sets is a failed chain anyway; fewer bound the lookups.
MAX_SETS = 5

_quiet = logging.getLogger("gatebox.antispam.dkimpy")


def present(message: bytes) -> bool:
    return any(name in ARC_FIELDS or name == "arc-authentication-results"
               for name, _ in fields(message))


def key_names(message: bytes) -> list[str] | None:
    """The key names the ARC sets need; None when there are too many sets
    to be worth asking about."""
    names = []
    for name, value in fields(message):
        if name not in ARC_FIELDS:
            continue
        try:
            tags = parse_tag_value(b"".join(value.split()))
        except (InvalidTagValueList, ValueError):
            continue
        domain = dns_txt.normal_name(tags.get(b"d", b""))
        selector = dns_txt.normal_name(tags.get(b"s", b""))
        if domain and selector:
            names.append(f"{selector}._domainkey.{domain}")
    names = list(dict.fromkeys(names))
    return names if len(names) <= 2 * MAX_SETS else None


def verify(message: bytes, names: list[str] | None, fetched: dict) -> tuple[str, str]:
    """(pass | fail | none | temperror | policy, reason); runs in a worker thread."""
    if not present(message):
        return "none", "not ARC signed"
    if names is None:
        return "fail", f"more than {MAX_SETS} ARC sets"
    failed = [fetched[n].failure for n in names if n in fetched and fetched[n].failed]
    if failed:
        return "temperror", failed[0]
    if len(message) > MAX_MESSAGE_OCTETS:
        return "policy", "not verified: the message is too large"
    try:
        cv, _results, reason = dkim.arc_verify(message, logger=_quiet,
                                               dnsfunc=dns_txt.served(fetched),
                                               minkey=MIN_KEY_BITS)
    except (dkim.DKIMException, ValueError, TypeError, IndexError, KeyError) as error:
        return "fail", f"{type(error).__name__}: {error}"
    result = (cv or b"fail").decode("ascii", "replace")
    if result not in ("pass", "fail", "none"):
        result = "fail"
    return result, str(reason or "")
