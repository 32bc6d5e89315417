"""The Heuristic filter: named rules with scores, in the manner of
SpamAssassin's (several keep SpamAssassin's names). Each looks for one sign
that legitimate mailers do not leave and bulk or phishing mail often does;
none decides alone at the Medium level, a few together do.

Forged mailer headers are judged simply, on two signs:
- FORGED_OUTLOOK_MID: X-Mailer claims Microsoft Outlook, but the Message-ID
  has neither Outlook's own shape (hex groups joined by "$", as in
  <000001d9a1b2$3c4d5e60$b5e7f720$@example.com>) nor that of Exchange
  (Exchange Online's ...prod.outlook.com, or a long upper-case/hex local
  part as Exchange servers write). Spamware copies the X-Mailer line but
  makes its own Message-IDs;
- MAILER_CONFLICT: X-Mailer and User-Agent name two different mail programs;
  a real mailer writes one of the two, or both naming itself."""

from __future__ import annotations

import datetime
import email.utils
import ipaddress
import re
import urllib.parse

from .rule import Message, Rule, quoted

HOUR = 3600.0
MAX_ID = 512
PAST_HOURS = 96
FUTURE_HOURS = 12

_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_ANGLE_ADDR = re.compile(r"<([^<>]*)>\s*$")
# RFC 5322 3.3: a date ends in a zone, numeric or one of the obsolete names
# (a trailing comment such as "(CET)" allowed).
_ZONE = re.compile(r"(?:[+-]\d{4}|\b(?:UT|GMT|[ECMP][SD]T|[A-IK-Za-ik-z]))\s*(?:\([^()]*\))?\s*$")
_MESSAGE_ID = re.compile(r"^<[^<>@\s]{1,250}@[^<>@\s]{1,250}>$")
_LETTER = re.compile(r"[^\W\d_]")
_PUNCTUATION_RUN = re.compile(r"[!?$*#%]{3,}|(?:[!?$*#%]\s?){4,}")
_PUNCTUATION = re.compile(r"[!?$*#%&@^~|+=<>]")
_WORD = re.compile(r"[^\W_]{3,}")
_URL_IN_TEXT = re.compile(r"\b(?:https?|ftp)://[^\s<>\"')\]]{1,2048}", re.IGNORECASE)
_DOMAIN_IN_TEXT = re.compile(
    r"^(?:(?:https?|ftp)://)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})\.?(?::\d{1,5})?(?:[/?#]\S*)?$",
    re.IGNORECASE)
_OUTLOOK_CLAIM = re.compile(r"microsoft (?:office )?outlook", re.IGNORECASE)
_OUTLOOK_MID = re.compile(r"^<[0-9a-f]{8,}\$[0-9a-f]{8}\$[0-9a-f]{8}(?:\$[0-9a-f]{0,8})?@[^<>\s]+>$",
                          re.IGNORECASE)
_EXCHANGE_MID = re.compile(r"^<(?:[A-Za-z0-9.-]{1,200}@[A-Za-z0-9.-]*\.prod\.outlook\.com"
                           r"|[0-9A-F]{16,}[0-9A-Za-z.-]*@[^<>\s]+)>$")
# Mail programs by the words their X-Mailer / User-Agent lines carry.
_MAILER_FAMILIES = (
    ("outlook", re.compile(r"outlook|microsoft", re.IGNORECASE)),
    ("thunderbird", re.compile(r"thunderbird|mozilla|icedove|seamonkey", re.IGNORECASE)),
    ("apple mail", re.compile(r"apple mail|iphone mail|ipad mail", re.IGNORECASE)),
    ("mutt", re.compile(r"\bmutt\b|neomutt", re.IGNORECASE)),
    ("roundcube", re.compile(r"roundcube", re.IGNORECASE)),
    ("evolution", re.compile(r"evolution", re.IGNORECASE)),
    ("k-9", re.compile(r"k-9|k9mail", re.IGNORECASE)),
    ("the bat", re.compile(r"the bat", re.IGNORECASE)),
    ("php", re.compile(r"\bphp", re.IGNORECASE)),
)
# What Windows runs when the file is opened: executables, scripts, installers,
# shortcuts, screensavers, help and control-panel files.
EXECUTABLE_EXTENSIONS = frozenset(
    "exe scr pif bat cmd com js jse vbs vbe wsf wsh ws wsc jar msi msp mst cpl hta lnk "
    "reg ps1 ps2 psm1 chm application gadget inf scf sct shb shs vb vxd".split())
# What a file name pretends to be before the real extension (invoice.pdf.exe).
DECOY_EXTENSIONS = frozenset(
    "pdf doc docx xls xlsx ppt pptx txt rtf jpg jpeg png gif bmp zip rar mp3 mp4 avi mov "
    "htm html csv odt ods".split())


# ---- dates and identifiers -----------------------------------------------------------------
def _date(message: Message):
    """The Date header as a timezone-aware datetime; None when it does not parse."""
    value = message.view.header("Date")
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None or not _ZONE.search(value):
        return None
    if parsed.tzinfo is None:
        # -0000: "no information about the local time zone" (RFC 5322 3.3), still UTC.
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def missing_date(message: Message) -> str | None:
    return "no Date header" if message.view.header("Date") is None else None


def invalid_date(message: Message) -> str | None:
    value = message.view.header("Date")
    if value is None or _date(message) is not None:
        return None
    return f"Date {quoted(value)} is not an RFC 5322 date"


def _hours_off(message: Message) -> float | None:
    parsed = _date(message)
    if parsed is None:
        return None
    try:
        return (parsed.timestamp() - message.now) / HOUR
    except (OverflowError, ValueError, OSError):
        return None


def date_in_past(message: Message) -> str | None:
    hours = _hours_off(message)
    if hours is None or hours >= -PAST_HOURS:
        return None
    return f"Date {quoted(message.view.header('Date'))} is {-hours / 24:.0f} days before receipt"


def date_in_future(message: Message) -> str | None:
    hours = _hours_off(message)
    if hours is None or hours <= FUTURE_HOURS:
        return None
    return f"Date {quoted(message.view.header('Date'))} is {hours:.0f} hours after receipt"


def missing_message_id(message: Message) -> str | None:
    return "no Message-ID header" if message.view.header("Message-ID") is None else None


def invalid_message_id(message: Message) -> str | None:
    value = message.view.header("Message-ID")
    if value is None or _MESSAGE_ID.match(value.strip()):
        return None
    return f"Message-ID {quoted(value)} is not <local@domain>"


# ---- From and Subject ----------------------------------------------------------------------
def from_parts(value: str) -> tuple[str, str]:
    """(display name, address) of a From value. The address is the last
    <...>, as mail programs show it; parseaddr would take an unquoted
    address in the display name for the address itself."""
    found = _ANGLE_ADDR.search(value)
    if found:
        return value[:found.start()].strip(), found.group(1).strip()
    name, address = email.utils.parseaddr(value)
    return name, address


def from_name_other_address(message: Message) -> str | None:
    value = message.view.header("From")
    if not value:
        return None
    name, address = from_parts(value)
    for shown in _ADDRESS.findall(name):
        if shown.lower() != address.lower():
            return f"From shows {shown} but the address is {address or 'empty'}"
    return None


def subject_all_caps(message: Message) -> str | None:
    subject = message.view.header("Subject") or ""
    letters = _LETTER.findall(subject)
    words = [word for word in subject.split() if _LETTER.search(word)]
    if len(letters) < 8 or len(words) < 2:
        return None
    if any(letter.islower() for letter in letters) or not any(l.isupper() for l in letters):
        return None
    return f"Subject {quoted(subject)} is all capitals"


def subject_punctuation(message: Message) -> str | None:
    subject = message.view.header("Subject") or ""
    if _PUNCTUATION_RUN.search(subject):
        return f"Subject {quoted(subject)} has a run of punctuation"
    visible = [c for c in subject if not c.isspace()]
    marks = _PUNCTUATION.findall(subject)
    if len(marks) >= 5 and len(marks) * 4 >= len(visible):
        return f"Subject {quoted(subject)} is a quarter or more punctuation"
    return None


# ---- parts ---------------------------------------------------------------------------------
def html_only(message: Message) -> str | None:
    view = message.view
    if "text/html" not in view.content_types or "text/plain" in view.content_types:
        return None
    if not view.html_text.strip():
        return None
    return "an HTML part and no text part"


def _words(text: str) -> set[str]:
    return {word.casefold() for word in _WORD.findall(text)}


def parts_disagree(message: Message) -> str | None:
    for plain, html in message.view.alternatives:
        ours, theirs = _words(plain), _words(html)
        if len(ours) < 5 and len(theirs) < 5:
            continue
        shared = len(ours & theirs) / max(1, len(ours | theirs))
        if shared < 0.4:
            return (f"the text and HTML alternatives share {shared:.0%} of their words "
                    f"({len(ours)} and {len(theirs)} words)")
    return None


# ---- links ---------------------------------------------------------------------------------
def _host(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme.lower() not in ("http", "https", "ftp"):
            return None
        host = parts.hostname
    except ValueError:
        return None
    return host.rstrip(".").lower() if host else None


def _numeric_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    # Browsers also take an address written as one number or in hex (http://3232235777/).
    return bool(re.fullmatch(r"(?:0x[0-9a-f]+|\d+)(?:\.(?:0x[0-9a-f]+|\d+)){0,3}", host))


def _urls(message: Message) -> list[str]:
    view = message.view
    links = [href for _, href in view.links]
    # A case-blind pattern is scanned at every octet; most text has no URL at all.
    return links + _URL_IN_TEXT.findall(view.text) if "://" in view.text else links


def link_to_ip(message: Message) -> str | None:
    for url in _urls(message):
        host = _host(url)
        if host and _numeric_host(host):
            return f"a link to the bare address {host}: {quoted(url)}"
    return None


def _bare(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def _same_site(shown: str, target: str) -> bool:
    shown, target = _bare(shown), _bare(target)
    return shown == target or target.endswith("." + shown) or shown.endswith("." + target)


def link_text_other_domain(message: Message) -> str | None:
    for text, href in message.view.links:
        shown = _DOMAIN_IN_TEXT.match(text.strip())
        target = _host(href)
        if not shown or not target:
            continue
        shown_host = shown.group(1).rstrip(".").lower()
        if not _same_site(shown_host, target):
            return f"the link text names {shown_host} but the link goes to {target}"
    return None


# ---- attachments ---------------------------------------------------------------------------
def _extensions(name: str) -> list[str]:
    # Windows drops trailing dots and spaces: "invoice.exe. " opens as an .exe.
    cleaned = name.strip().rstrip(". ").lower()
    cleaned = cleaned.replace("\\", "/").rpartition("/")[2]
    return [part.strip() for part in cleaned.split(".")[1:]]


def executable_attachment(message: Message) -> str | None:
    for name in message.view.attachments:
        extensions = _extensions(name)
        if extensions and extensions[-1] in EXECUTABLE_EXTENSIONS:
            return f"the attachment {quoted(name)} is a program (.{extensions[-1]})"
    return None


def double_extension(message: Message) -> str | None:
    for name in message.view.attachments:
        extensions = _extensions(name)
        if len(extensions) >= 2 and extensions[-1] in EXECUTABLE_EXTENSIONS and \
                extensions[-2] in DECOY_EXTENSIONS:
            return f"the attachment {quoted(name)} poses as .{extensions[-2]}"
    return None


# ---- mailers -------------------------------------------------------------------------------
def forged_outlook_message_id(message: Message) -> str | None:
    view = message.view
    mailer = view.header("X-Mailer") or ""
    if not _OUTLOOK_CLAIM.search(mailer):
        return None
    message_id = (view.header("Message-ID") or "").strip()
    # Neither shape is longer than MAX_ID; the patterns backtrack on long values.
    if len(message_id) <= MAX_ID and (_OUTLOOK_MID.match(message_id) or
                                      _EXCHANGE_MID.match(message_id)):
        return None
    return f"X-Mailer {quoted(mailer)} but Message-ID {quoted(message_id or 'none')} is not Outlook's"


def _family(value: str) -> str | None:
    for name, pattern in _MAILER_FAMILIES:
        if pattern.search(value):
            return name
    return None


def mailer_conflict(message: Message) -> str | None:
    view = message.view
    mailer, agent = view.header("X-Mailer"), view.header("User-Agent")
    if not mailer or not agent:
        return None
    one, other = _family(mailer), _family(agent)
    if one is None or other is None or one == other:
        return None
    return f"X-Mailer {quoted(mailer, 30)} and User-Agent {quoted(agent, 30)} name two mailers"


HEURISTIC_RULES = (
    Rule("MISSING_DATE", 1.4, "The message has no Date header (RFC 5322 requires one).",
         missing_date),
    Rule("INVALID_DATE", 1.5, "The Date header is not an RFC 5322 date.",
         invalid_date),
    Rule("DATE_IN_PAST_96_XX", 1.0, f"The Date is more than {PAST_HOURS} hours before the "
         "message arrived.", date_in_past),
    Rule("DATE_IN_FUTURE_12_XX", 1.5, f"The Date is more than {FUTURE_HOURS} hours after the "
         "message arrived.", date_in_future),
    Rule("MISSING_MID", 0.5, "The message has no Message-ID header.", missing_message_id),
    Rule("INVALID_MSGID", 1.2, "The Message-ID is not of the form <local@domain>.",
         invalid_message_id),
    Rule("FROM_NAME_OTHER_ADDRESS", 2.0, "The From display name shows an address other than "
         "the sender's (\"support@bank.example\" <x@elsewhere.test>).", from_name_other_address),
    Rule("SUBJ_ALL_CAPS", 1.0, "The subject is written in capitals.", subject_all_caps),
    Rule("SUBJ_PUNCTUATION", 1.0, "The subject is full of punctuation (!!!, $$$, a quarter or "
         "more of it marks).", subject_punctuation),
    Rule("MIME_HTML_ONLY", 1.0, "The message has an HTML part and no plain text part.",
         html_only),
    Rule("MPART_ALT_DIFF", 1.5, "The text and HTML alternatives of the message say different "
         "things (they share under 40% of their words).", parts_disagree),
    Rule("NUMERIC_HTTP_ADDR", 1.5, "A link goes to a bare IP address instead of a name.",
         link_to_ip),
    Rule("LINK_TEXT_OTHER_DOMAIN", 2.0, "A link's text names one domain while the link goes "
         "to another (phishing).", link_text_other_domain),
    Rule("EXECUTABLE_ATTACHMENT", 4.0, "An attachment is a program or script Windows would run "
         "(" + ", ".join("." + e for e in sorted(EXECUTABLE_EXTENSIONS)) + ").",
         executable_attachment),
    Rule("ATTACH_DOUBLE_EXTENSION", 2.0, "A program attachment poses as a document or picture "
         "(invoice.pdf.exe).", double_extension),
    Rule("FORGED_OUTLOOK_MID", 2.0, "X-Mailer claims Microsoft Outlook but the Message-ID has "
         "neither Outlook's nor Exchange's shape.", forged_outlook_message_id),
    Rule("MAILER_CONFLICT", 1.5, "X-Mailer and User-Agent name two different mail programs.",
         mailer_conflict),
)
