"""Deny Email with Invalid Headers: the syntax of the address headers
(Sender, From, Reply-To, To, Cc, Bcc), a syntax check only.

Two readers judge each value and both must agree that it is a clean address
list:
- the stdlib's header registry (email.policy.default), whose parser notes
  defects: a missing '>', a local part without a domain, an unterminated
  quoted string or comment, non-printable characters;
- `getaddresses` in the strict sense of CPython's fix for CVE-2023-27043:
  no ('', '') entries, nothing left over, as many addresses as the commas
  promise. Python 3.11.7 predates `getaddresses(strict=True)`, so
  `_strict_addresses` does the same checks around the non-strict parser.

Obsolete syntax (RFC 5322 section 4: "John Q. Public" unquoted) and broken
encoded words are accepted: a receiver must read the first, and the second
is damaged display text, not a malformed address. Raw UTF-8 is accepted
(RFC 6532); other 8-bit bytes are not.

The input is hostile: any failure of either parser is an invalid header,
never an exception, and values that would make the registry parser slow
(it is quadratic in the length) are judged by the strict reader alone."""

from __future__ import annotations

import email.errors
import email.policy
import email.utils
import re
from email.parser import BytesHeaderParser

ADDRESS_HEADERS = ("Sender", "From", "Reply-To", "To", "Cc", "Bcc")
SINGLE_HEADERS = ("From", "Sender")
MAY_BE_EMPTY = frozenset({"Bcc"})   # RFC 5322 3.6.3: "Bcc:" [address-list / CFWS]
# The registry parser needs about 0.15 s for 32 KiB (a thousand addresses)
# and four times that for twice the length.
REGISTRY_MAX_CHARS = 32 * 1024
# ... and this much over the whole message: past it the strict check alone
# judges, so a message of many long headers costs a bounded time.
REGISTRY_TOTAL_CHARS = 64 * 1024
# Nested comments make both parsers recurse; nobody nests them this deep.
MAX_COMMENT_DEPTH = 16

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_EMPTY_GROUP = re.compile(r":\s*;")
_DOMAIN_LITERAL = re.compile(r"@\[[^\[\]\\]*\]$")
_IGNORED_DEFECTS = (email.errors.ObsoleteHeaderDefect, email.errors.CharsetError,
                    email.errors.InvalidBase64CharactersDefect,
                    email.errors.InvalidBase64PaddingDefect,
                    email.errors.InvalidBase64LengthDefect)
_PARSER = BytesHeaderParser(policy=email.policy.compat32)


class _Invalid(Exception):
    pass


def invalid_header(message: bytes) -> str | None:
    """None when the address headers are well formed, else a short reason
    that names the header, for a `550 5.6.0` reply."""
    values = _address_values(message)
    for name in SINGLE_HEADERS:
        if len(values[name]) > 1:
            return f"more than one {name}: header"
    if not values["From"]:
        return "From: header is missing"
    left = [REGISTRY_TOTAL_CHARS]
    for name in ADDRESS_HEADERS:
        for raw in values[name]:
            reason = _value_problem(name, raw, left)
            if reason:
                return reason
    return None


def _address_values(message: bytes) -> dict[str, list[str]]:
    """The raw values, by canonical name. raw_items, not get_all: compat32
    turns a value with 8-bit bytes into a Header object that has lost them."""
    canonical = {name.lower(): name for name in ADDRESS_HEADERS}
    values: dict[str, list[str]] = {name: [] for name in ADDRESS_HEADERS}
    for name, raw in _PARSER.parsebytes(_header_block(message)).raw_items():
        key = canonical.get(name.strip().lower())
        if key:
            values[key].append(raw)
    return values


def _header_block(message: bytes) -> bytes:
    # The parser would split the whole body into lines for nothing.
    if message.startswith((b"\r\n", b"\n")):
        return b""
    end = _HEADER_END.search(message)
    return message[:end.end()] if end else message


def _value_problem(name: str, raw: str, left: list) -> str | None:
    """left: [characters the registry parser may still read in this message]."""
    try:
        value = raw.encode("ascii", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return f"{name}: header is not valid UTF-8"
    value = _FOLD.sub("", value)
    if not value.strip():
        return None if name in MAY_BE_EMPTY else f"{name}: header is empty"
    if _CONTROL.search(value):
        return f"{name}: header contains control characters"
    try:
        _strict_addresses(value)
        if len(value) <= min(REGISTRY_MAX_CHARS, left[0]):
            left[0] -= len(value)
            _registry_defects(name, value)
    except _Invalid:
        return f"{name}: header is not a valid address list"
    return None


def _registry_defects(name: str, value: str):
    try:
        header = email.policy.default.header_factory(name, value)
        defects = list(header.defects)
    except Exception:
        # 3.11's parser raises IndexError, AttributeError and others on
        # some malformed values ("foo@", "a@[1.2.3"): malformed it is.
        raise _Invalid() from None
    if any(_counts(defect) for defect in defects):
        raise _Invalid()


def _counts(defect) -> bool:
    if isinstance(defect, _IGNORED_DEFECTS):
        return False
    # Encoded-word complaints ("encoded word inside quoted string") concern
    # display text that is valid as plain text.
    return "encoded word" not in str(defect) and "encoded-word" not in str(defect)


def _strict_addresses(value: str) -> list[tuple[str, str]]:
    """What getaddresses([value], strict=True) accepts, or _Invalid."""
    skeleton = _skeleton(value)
    try:
        parsed = email.utils.getaddresses([value])
    except Exception:
        raise _Invalid() from None
    expected = 1 + skeleton.count(",")
    if len(parsed) != expected:
        raise _Invalid()
    empty_groups = len(_EMPTY_GROUP.findall(skeleton))
    if sum(1 for entry in parsed if entry == ("", "")) > empty_groups:
        raise _Invalid()
    for _, address in parsed:
        if address and not _plausible(address):
            raise _Invalid()
    return parsed


def _skeleton(value: str) -> str:
    """The value without quoted strings and comments, so that their commas
    and colons are not counted; unbalanced quotes or parentheses, or
    comments nested too deep, are invalid."""
    kept = []
    quoted = escaped = False
    depth = 0
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == "(":
            depth += 1
            if depth > MAX_COMMENT_DEPTH:
                raise _Invalid()
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise _Invalid()
        elif depth:
            pass
        elif ch == '"':
            quoted = True
        else:
            kept.append(ch)
    if quoted or depth or escaped:
        raise _Invalid()
    return "".join(kept)


def _plausible(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    if not (at and local and domain):
        return False
    # The non-strict parser leaves a '[' behind when a domain literal is broken.
    return "[" not in address or bool(_DOMAIN_LITERAL.search(address))
