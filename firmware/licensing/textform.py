"""The pasteable text form of a license key: Crockford base32 in dash-separated
groups of five, a "GATEBOX-" prefix and one check character at the end.

Reading is forgiving where the alphabet allows it (case, whitespace, line
breaks, dashes, e-mail quote marks, O for 0, I and L for 1) and strict about
everything else, so a mistyped character is reported as malformed before any
signature is checked."""

from __future__ import annotations

import re

from .errors import MalformedKey

PREFIX = "GATEBOX"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# The check character is the data's value mod 37; 37 is prime and greater
# than 32, so every single substituted character and every swap of two
# neighbouring characters changes it.
CHECK_ALPHABET = ALPHABET + "*~$=U"
GROUP = 5
GROUPS_PER_LINE = 8

_DECODE = {ch: value for value, ch in enumerate(ALPHABET)}
_DECODE.update({"O": 0, "I": 1, "L": 1})
_CHECK_DECODE = dict(_DECODE)
_CHECK_DECODE.update({ch: 32 + i for i, ch in enumerate("*~$=U")})
_IGNORED = re.compile(r"[\s\-]+")


def encode(raw: bytes, wrap: bool = False) -> str:
    """bytes -> 'GATEBOX-XXXXX-XXXXX-...-XXXXC'."""
    data = _to_base32(raw)
    text = data + CHECK_ALPHABET[_value(data) % 37]
    groups = [text[i:i + GROUP] for i in range(0, len(text), GROUP)]
    if not wrap:
        return "-".join([PREFIX, *groups])
    lines = ["-".join(groups[i:i + GROUPS_PER_LINE]) for i in range(0, len(groups), GROUPS_PER_LINE)]
    return PREFIX + "-\n" + "-\n".join(lines)


def decode(text: str) -> bytes:
    """Pasted text -> bytes, or MalformedKey saying what is wrong."""
    compact = normalise(text)
    if not compact.startswith(PREFIX):
        raise MalformedKey(f"a license key starts with '{PREFIX}-'")
    body = compact[len(PREFIX):]
    if len(body) < 2:
        raise MalformedKey("the key is too short; was it copied completely?")
    data, check = body[:-1], body[-1]
    for position, ch in enumerate(data, start=1):
        if ch not in _DECODE:
            raise MalformedKey(f"character {position} ('{ch}') is not used in license keys")
    if check not in _CHECK_DECODE:
        raise MalformedKey(f"the last character ('{check}') is not a valid check character")
    canonical = "".join(ALPHABET[_DECODE[ch]] for ch in data)
    if _value(canonical) % 37 != _CHECK_DECODE[check]:
        raise MalformedKey("the check character does not match: a character was mistyped, "
                           "swapped or lost in copying")
    return _from_base32(canonical)


def normalise(text: str) -> str:
    lines = [line.lstrip().lstrip(">") for line in text.splitlines()]
    return _IGNORED.sub("", "".join(lines)).upper()


def _value(data: str) -> int:
    value = 0
    for ch in data:
        value = value * 32 + _DECODE[ch]
    return value


def _to_base32(raw: bytes) -> str:
    bits = len(raw) * 8
    number = int.from_bytes(raw, "big") << (-bits % 5)
    count = (bits + 4) // 5
    return "".join(ALPHABET[(number >> (5 * (count - 1 - i))) & 31] for i in range(count))


def _from_base32(data: str) -> bytes:
    bits = len(data) * 5
    padding = bits % 8
    if padding >= 5:
        # No byte string encodes to this many characters: one was lost or added.
        raise MalformedKey("the key has the wrong length; was it copied completely?")
    number = _value(data)
    if number & ((1 << padding) - 1):
        raise MalformedKey("the key has the wrong length; was it copied completely?")
    return (number >> padding).to_bytes(bits // 8, "big")
