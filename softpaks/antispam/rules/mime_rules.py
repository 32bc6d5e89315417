"""The Default filter: built-in rules on the message's form. Most are the
strict-MIME checks that ISMail EP warns about: many mailers fail to conform
to MIME, so they score ordinary mail too and may cause significant false
positives. They suit offices whose senders are known to conform; the
Heuristic filter alone does not need strict MIME."""

from __future__ import annotations

from ..message_text import MAX_FIELD, MAX_MULTIPARTS, MAX_PARTS
from .rule import Message, Rule

# Header fields RFC 5322 allows once; a second one is a forgery's or a broken
# script's doing.
SINGLE_FIELDS = ("From", "Sender", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To")

_BOUNDARY_DEFECTS = ("NoBoundaryInMultipartDefect", "StartBoundaryNotFoundDefect",
                     "CloseBoundaryNotFoundDefect", "MultipartInvariantViolationDefect")
_BASE64_DEFECTS = ("InvalidBase64CharactersDefect", "InvalidBase64PaddingDefect",
                   "InvalidBase64LengthDefect")
_HEADER_DEFECTS = ("MissingHeaderBodySeparatorDefect", "FirstHeaderLineIsContinuationDefect",
                   "MisplacedEnvelopeHeaderDefect", "MIMEFieldTooLong")


def _defect(message: Message, names, what: str) -> str | None:
    found = sorted({d for d in message.view.defects if d.startswith(names)})
    return f"{what}: {', '.join(found)}" if found else None


def missing_from(message: Message) -> str | None:
    return "no From header" if not message.view.header("From") else None


def missing_to(message: Message) -> str | None:
    view = message.view
    if view.header("To") or view.header("Cc") or view.header("Bcc") is not None:
        return None
    return "no To or Cc header"


def missing_subject(message: Message) -> str | None:
    return "no Subject header" if message.view.header("Subject") is None else None


def duplicate_fields(message: Message) -> str | None:
    twice = [name for name in SINGLE_FIELDS if len(message.view.header_all(name)) > 1]
    return f"more than one {', '.join(twice)} header" if twice else None


def empty_message(message: Message) -> str | None:
    view = message.view
    if view.text.strip() or view.html_text.strip() or view.attachments:
        return None
    return "no text, HTML or attachment"


def mime_no_version(message: Message) -> str | None:
    view = message.view
    content_type = view.header("Content-Type")
    if content_type is None or view.header("MIME-Version") is not None:
        return None
    return f"Content-Type {content_type.split(';')[0].strip()[:60]!r} without MIME-Version"


def mime_boundary(message: Message) -> str | None:
    return _defect(message, _BOUNDARY_DEFECTS, "multipart boundaries are broken")


def mime_bad_base64(message: Message) -> str | None:
    return _defect(message, _BASE64_DEFECTS, "base64 that does not decode cleanly")


def mime_header_syntax(message: Message) -> str | None:
    return _defect(message, _HEADER_DEFECTS, "the header block is malformed")


def mime_unknown_charset(message: Message) -> str | None:
    return _defect(message, ("unknown charset", "malformed charset"), "a text part's charset")


def mime_unknown_encoding(message: Message) -> str | None:
    return _defect(message, ("UnknownTransferEncoding",), "a Content-Transfer-Encoding MIME "
                   "does not define")


def mime_qp_long_line(message: Message) -> str | None:
    return _defect(message, ("QPLongLine",), "quoted-printable lines over 76 characters")


def mime_too_many_parts(message: Message) -> str | None:
    return _defect(message, ("TooManyParts", "TooManyMultiparts"),
                   "more MIME parts or nesting than are read")


def header_8bit(message: Message) -> str | None:
    if message.raw_headers.isascii():
        return None
    # RFC 2047: header text beyond ASCII is sent as encoded words.
    return "8-bit characters in the header that are not RFC 2047 encoded"


DEFAULT_RULES = (
    Rule("MISSING_FROM", 1.0, "The message has no From header.", missing_from),
    Rule("MISSING_HEADERS", 1.0, "The message has no To or Cc header.", missing_to),
    Rule("MISSING_SUBJECT", 0.5, "The message has no Subject header.", missing_subject),
    Rule("DUPLICATE_HEADER", 1.5, "A header allowed once (From, To, Subject, Date, Message-ID "
         "and others) appears more than once.", duplicate_fields),
    Rule("EMPTY_MESSAGE", 1.0, "The message has no text, no HTML and no attachment.",
         empty_message),
)

STRICT_MIME_RULES = (
    Rule("MIME_NO_VERSION", 1.0, "Strict MIME: a Content-Type header without MIME-Version.",
         mime_no_version),
    Rule("MIME_BOUNDARY", 1.5, "Strict MIME: a multipart without its boundary, or parts not "
         "closed by it.", mime_boundary),
    Rule("MIME_BAD_BASE64", 1.0, "Strict MIME: a base64 part with characters or padding "
         "base64 does not allow.", mime_bad_base64),
    Rule("MIME_HEADER_SYNTAX", 1.0, "Strict MIME: the header block is malformed (no blank "
         f"line before the body, a continuation line first, a MIME field over {MAX_FIELD} "
         "characters).", mime_header_syntax),
    Rule("MIME_UNKNOWN_CHARSET", 1.0, "Strict MIME: a text part in a charset that does not "
         "exist.", mime_unknown_charset),
    Rule("MIME_UNKNOWN_ENCODING", 1.0, "Strict MIME: a Content-Transfer-Encoding other than "
         "7bit, 8bit, binary, quoted-printable or base64.", mime_unknown_encoding),
    Rule("MIME_QP_LONG_LINE", 1.0, "Strict MIME: quoted-printable lines longer than the 76 "
         "characters RFC 2045 allows.", mime_qp_long_line),
    Rule("MIME_TOO_MANY_PARTS", 1.0, f"Strict MIME: more than {MAX_PARTS} MIME parts, or more "
         f"than {MAX_MULTIPARTS} multiparts.", mime_too_many_parts),
    Rule("MIME_8BIT_HEADER", 1.0, "Strict MIME: header text beyond ASCII that is not RFC 2047 "
         "encoded.", header_8bit),
)

ALL_DEFAULT_RULES = DEFAULT_RULES + STRICT_MIME_RULES
