"""A message as the content layers read it: decoded headers, text, HTML,
links, attachment names and the MIME defects found on the way.

Every message is hostile: parse() never raises, reads only the first
CONTENT_PREFIX bytes (as PMG does), walks a bounded number of parts and caps
what each part decodes to, so a crafted message costs bounded work.

The email package parses with its compat32 policy: the structured header
parser of email.policy.default takes seconds on one long Content-Type and
recurses without bound on nested comments, both a sender's choice. Header
text is decoded here instead (decode_words), over the raw value. Before
parsing, MIME fields are cut to MAX_FIELD characters and the message to its
first MAX_MULTIPARTS multipart declarations (nesting makes the parser
recurse), each cut recorded as a defect."""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import email.utils
import quopri
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

CONTENT_PREFIX = 256 * 1024
MAX_PARTS = 100
# A part's decoded text beyond this adds nothing a rule or a token needs.
MAX_DECODED = 512 * 1024
MAX_HEADER = 16 * 1024
MAX_LINKS = 500
MAX_FIELD = 4096
MAX_TAGS = 10000
MAX_MULTIPARTS = 50

_TAG = re.compile(r"<[^<>]{0,4096}>")
_TRANSFER_ENCODINGS = {"7bit", "8bit", "binary", "quoted-printable", "base64"}
_HIDDEN_ELEMENTS = {"script", "style", "head", "title"}
_BLOCK_ELEMENTS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6",
                   "table", "blockquote", "hr", "td", "th"}


@dataclass
class MessageView:
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    html: str = ""
    html_text: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    # (plain text, HTML text) of each multipart/alternative holding both.
    alternatives: list[tuple[str, str]] = field(default_factory=list)
    # Whether the message was longer than what was read.
    truncated: bool = False

    def header(self, name: str) -> str | None:
        """The first header of that name, or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


class _HTMLText(HTMLParser):
    """Visible text and (text, href) links; never raises on broken markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[tuple[str, str]] = []
        self._hidden = 0
        self._href: str | None = None
        self._link_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _HIDDEN_ELEMENTS:
            self._hidden += 1
        elif tag in _BLOCK_ELEMENTS:
            self.parts.append("\n")
        if tag == "a":
            self._close_link()
            href = dict(attrs).get("href")
            self._href = (href or "").strip()[:2048] if href is not None else None
            self._link_text = []

    def handle_startendtag(self, tag, attrs):
        if tag in _BLOCK_ELEMENTS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _HIDDEN_ELEMENTS and self._hidden:
            self._hidden -= 1
        elif tag in _BLOCK_ELEMENTS:
            self.parts.append("\n")
        if tag == "a":
            self._close_link()

    def handle_data(self, data):
        if self._hidden:
            return
        self.parts.append(data)
        if self._href is not None:
            self._link_text.append(data)

    def _close_link(self):
        if self._href is not None and len(self.links) < MAX_LINKS:
            text = " ".join("".join(self._link_text).split())
            self.links.append((text[:1024], self._href))
        self._href = None
        self._link_text = []

    def finish(self) -> str:
        self._close_link()
        text = "".join(self.parts)
        return re.sub(r"[ \t\r\f\v]+", " ", re.sub(r"\n\s*\n+", "\n\n", text)).strip()


def html_to_text(html: str) -> tuple[str, list[tuple[str, str]]]:
    """The visible text of an HTML fragment and its links. html.parser costs
    some 7 microseconds a tag: past MAX_TAGS tags the markup is only cut
    out (no links, script and style text kept), so a page of nothing but
    tags costs what its size does."""
    if html.count("<") > MAX_TAGS:
        return " ".join(_TAG.sub(" ", html).split()), []
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser raises on some broken markup; keep what was read
        pass
    return parser.finish(), parser.links


def _unfolded(value) -> str:
    text = str(value)
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())[:MAX_HEADER]


_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)\s+(=\?)")


def _raw_text(raw) -> str:
    """A header's raw value as text; 8-bit octets the sender did not encode
    (kept as surrogates by the email package) read as UTF-8."""
    text = raw if isinstance(raw, str) else str(raw)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return text.encode("utf-8", "replace").decode("utf-8", "replace")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded one by one, over the raw text: the
    shape of the header stays as sent (a structured parse would rewrite an
    address header and drop what it cannot parse); a word that does not
    decode stays as it was."""
    value = _BETWEEN_WORDS.sub(r"\1\2", value[:MAX_HEADER])

    def decoded(match: re.Match) -> str:
        charset, encoding, data = match.group(1).split("*")[0], match.group(2).upper(), match.group(3)
        try:
            if encoding == "B":
                octets = base64.b64decode(data + "=" * (-len(data) % 4), validate=False)
            else:
                octets = quopri.decodestring(data.replace("_", " "), header=True)
            return octets.decode(charset, "replace")
        except (LookupError, ValueError, binascii.Error):
            return match.group(0)

    return _ENCODED_WORD.sub(decoded, value)


def _decoded_text(part, view: MessageView, record: bool = True) -> str:
    """The part's text, decoded; record=False for a second reading of a part
    whose defects are recorded by the first."""
    defects = view.defects if record else []
    try:
        payload = part.get_payload(decode=True)
    except Exception as error:
        defects.append(f"undecodable part: {type(error).__name__}")
        return ""
    if payload is None:
        return ""
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "replace")
    payload = payload[:MAX_DECODED]
    charset = "us-ascii"
    try:
        charset = part.get_content_charset() or "us-ascii"
    except Exception:
        defects.append("malformed charset")
    try:
        return payload.decode(charset, "replace")
    except (LookupError, ValueError):
        defects.append(f"unknown charset {charset[:40]!r}")
        return payload.decode("latin-1", "replace")


def _filename(part) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return "(undecodable name)"
    if name is None:
        try:
            name = part.get_param("name")
        except Exception:
            name = None
        if isinstance(name, tuple):
            name = email.utils.collapse_rfc2231_value(name)
    if name is None:
        return None
    return _unfolded(decode_words(_raw_text(name)))[:255]


def _defect_names(defects) -> list[str]:
    return [type(defect).__name__ for defect in defects]


def _walk(root, view: MessageView, texts: list[str], htmls: list[str]) -> None:
    count = 0
    stack = [root]
    while stack:
        part = stack.pop()
        count += 1
        if count > MAX_PARTS:
            view.defects.append("TooManyParts")
            return
        try:
            content_type = part.get_content_type()
        except Exception:
            content_type = "text/plain"
            view.defects.append("MalformedContentType")
        view.content_types.append(content_type)
        if part.is_multipart():
            view.defects += _defect_names(getattr(part, "defects", ()))
            try:
                children = part.get_payload()
            except Exception:
                children = []
            if isinstance(children, list):
                if content_type == "multipart/alternative":
                    view.alternatives.append(_alternative(children, view))
                stack.extend(reversed(children))
            continue
        _leaf(part, content_type, view, texts, htmls)
        # Decoding adds its own defects (bad base64), so they are read after it.
        view.defects += _defect_names(getattr(part, "defects", ()))


def _alternative(children, view: MessageView) -> tuple[str, str]:
    """The plain and the HTML text of one multipart/alternative, side by side."""
    plain, html = "", ""
    for child in children[:MAX_PARTS]:
        try:
            kind = child.get_content_type()
        except Exception:
            continue
        if kind == "text/plain" and not plain:
            plain = _decoded_text(child, view, record=False)
        elif kind == "text/html" and not html:
            html = html_to_text(_decoded_text(child, view, record=False))[0]
    return plain, html


def _transfer_defects(part, view: MessageView) -> None:
    """What the email package lets pass but strict MIME does not: an unknown
    Content-Transfer-Encoding, quoted-printable lines over RFC 2045's 76."""
    try:
        encoding = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    except Exception:
        view.defects.append("UnknownTransferEncoding")
        return
    if encoding not in _TRANSFER_ENCODINGS:
        view.defects.append("UnknownTransferEncoding")
    elif encoding == "quoted-printable":
        try:
            raw = part.get_payload()
        except Exception:
            return
        if isinstance(raw, str) and any(len(line) > 76 for line in raw[:MAX_DECODED].splitlines()):
            view.defects.append("QPLongLine")


def _leaf(part, content_type: str, view: MessageView, texts: list[str], htmls: list[str]) -> None:
    _transfer_defects(part, view)
    name = _filename(part)
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    if name is not None:
        view.attachments.append(name)
    if disposition == "attachment" or name is not None:
        return
    if content_type == "text/plain":
        texts.append(_decoded_text(part, view))
    elif content_type == "text/html":
        htmls.append(_decoded_text(part, view))


def parse(message: bytes) -> MessageView:
    """The view of message[:CONTENT_PREFIX]. Never raises."""
    view = MessageView(truncated=len(message) > CONTENT_PREFIX)
    try:
        _parse_into(bytes(message[:CONTENT_PREFIX]), view)
    except Exception as error:  # a last guard: the email package has surprises
        view.defects.append(f"unparseable: {type(error).__name__}")
    return view


_MIME_FIELD = re.compile(rb"^content-[a-z-]{1,40}[ \t]*:", re.IGNORECASE)
_MULTIPART = re.compile(rb"^content-type[ \t]*:[ \t]*multipart/", re.IGNORECASE)


def _bounded(data: bytes, view: MessageView) -> bytes:
    """data with MIME fields (and their continuation lines) cut to
    MAX_FIELD octets and cut off before the (MAX_MULTIPARTS + 1)th multipart
    declaration: what the parser's time and depth depend on."""
    lines = data.splitlines(keepends=True)
    out: list[bytes] = []
    field_left = None          # octets still allowed in the MIME field being read
    multiparts = 0
    for line in lines:
        if field_left is not None and line[:1] in (b" ", b"\t"):
            kept = line[:field_left]
            field_left -= len(kept)
            if kept:
                out.append(kept if kept.endswith(b"\n") else kept.rstrip(b"\r") + b"\r\n")
            continue
        field_left = None
        if _MIME_FIELD.match(line):
            if _MULTIPART.match(line):
                multiparts += 1
                if multiparts > MAX_MULTIPARTS:
                    view.defects.append("TooManyMultiparts")
                    break
            if len(line) > MAX_FIELD:
                view.defects.append("MIMEFieldTooLong")
                line = line[:MAX_FIELD].rstrip(b"\r\n") + b"\r\n"
            field_left = MAX_FIELD - len(line)
        out.append(line)
    return b"".join(out)


def _parse_into(data: bytes, view: MessageView) -> None:
    parsed = email.message_from_bytes(_bounded(data, view), policy=email.policy.compat32)
    for key, raw in parsed._headers:  # raw values in order; items() would parse eagerly
        view.headers.append((str(key), _unfolded(decode_words(_raw_text(raw)))))
    texts: list[str] = []
    htmls: list[str] = []
    _walk(parsed, view, texts, htmls)
    view.text = "\n".join(texts)
    view.html = "\n".join(htmls)
    if view.html:
        if view.html.count("<") > MAX_TAGS:
            view.defects.append("HTMLTooManyTags")
        view.html_text, view.links = html_to_text(view.html)


# The last message parsed and its view: the rules and Bayes look at the same
# message one after the other in the data stage, and need it parsed once.
# The bytes object itself is kept and compared by identity, so a view is
# never handed out for other content.
_last: tuple[bytes, MessageView] | None = None


def parse_cached(message: bytes) -> MessageView:
    """parse(message), reusing the view when called again with the same
    message object. The view is shared: do not change it."""
    global _last
    last = _last
    if last is not None and last[0] is message:
        return last[1]
    view = parse(message)
    _last = (message, view)
    return view
