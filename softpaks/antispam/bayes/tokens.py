"""A message's Bayes tokens: orthogonal sparse bigrams (OSB, as CRM114 and
dspam use them) over a few header fields and the decoded body.

For every word, the word itself and its pairs with each of the next four
words (a window of five), the distance written into the pair ("buy ? now"
is "buy" then "now" two words on), so a pair survives the filler words a
spammer puts between words that give him away. Header words carry their
field's name ("subject:free"), URLs their host ("url:example.com").

A message is hostile: the text read, the words taken and the tokens kept
are all bounded; a token is kept once per message (what is counted is how
many messages hold it). Tokens leave as 8-byte hashes, so the database never
holds the words of anyone's mail."""

from __future__ import annotations

import hashlib
import re
from itertools import islice, zip_longest

from .. import message_text

WINDOW = 5                 # a word and the next four
MAX_TOKENS = 3000          # per message
MAX_BODY_CHARS = 64 * 1024
MAX_HEADER_CHARS = 1024
MAX_WORD = 40              # longer runs are noise (base64, hashes): one "long word" token
HEADERS = ("subject", "from", "to", "reply-to", "content-type", "x-mailer", "user-agent",
           "list-id", "list-unsubscribe", "return-path", "sender")
ADDRESS_HEADERS = ("from", "to", "reply-to", "return-path", "sender")

_WORD = re.compile(r"[^\W_][\w'$€£%.-]*[^\W_]|[^\W_]|[$€£%!]", re.UNICODE)
_URL = re.compile(r"\bhttps?://([^/\s\"'<>?#]{1,253})", re.IGNORECASE)
_ADDRESS = re.compile(r"[\w.+-]{1,64}@([\w-]{1,63}(?:\.[\w-]{1,63}){0,10})", re.UNICODE)


def _words(text: str, limit: int) -> list[str]:
    # One pass of C per step, not a Python step per word: a word has no
    # space in it, so the words are lower-cased together. (A word begins and
    # ends with a letter or digit, or is one symbol: nothing to strip.)
    found = _WORD.findall(text)[:limit]
    if not found:
        return []
    words = " ".join(found).lower().split(" ")
    if max(map(len, words)) > MAX_WORD:
        words = [w if len(w) <= MAX_WORD else f"long:{w[:3]}{len(w) // 10}" for w in words]
    return words


_GAPS = tuple(" ?" * (distance - 1) + " " for distance in range(1, WINDOW))


def osb(words: list[str], prefix: str = "") -> list[str]:
    """The word itself and its sparse pairs within WINDOW, prefixed: each
    word, then its pairs with the next four, in that order."""
    heads = [prefix + word for word in words] if prefix else words
    columns = [heads] + [[f"{head}{gap}{word}" for head, word in zip(heads, words[distance:])]
                         for distance, gap in enumerate(_GAPS, 1)]
    return [token for row in zip_longest(*columns) for token in row if token is not None]


def token_texts(message: bytes) -> list[str]:
    """The distinct tokens of a message, in the order found, at most MAX_TOKENS."""
    return view_token_texts(message_text.parse(message))


def view_token_texts(view: message_text.MessageView) -> list[str]:
    """token_texts of a message already parsed (the data stage's rules parsed it)."""
    # Each token once, in the order first found; the first MAX_TOKENS are kept.
    found: dict[str, None] = {}

    def add(items):
        found.update(dict.fromkeys(items))

    for name, value in view.headers:
        key = name.lower()
        if key not in HEADERS:
            continue
        value = value[:MAX_HEADER_CHARS]
        if key in ADDRESS_HEADERS:
            add(f"{key}:domain:{d.lower()}" for d in _ADDRESS.findall(value))
        add(osb(_words(value, 64), f"{key}:"))
    body = (view.text + "\n" + view.html_text)[:MAX_BODY_CHARS]
    # A case-blind pattern is scanned at every octet; most text has no URL at all.
    for text in (view.text, view.html):
        if "://" in text:
            add(f"url:{host.lower().rstrip('.')}" for host in _URL.findall(text))
    add(f"url:{_host(href)}" for _, href in view.links if _host(href))
    add(f"attachment:{name.lower()[-8:]}" for name in view.attachments)
    add(osb(_words(body, MAX_TOKENS)))
    return list(islice(found, MAX_TOKENS))


def _host(href: str) -> str:
    match = _URL.match(href.strip())
    return match.group(1).lower().rstrip(".") if match else ""


def hashed(token: str) -> int:
    """A token's 8-byte hash as a signed 64-bit integer (an SQLite INTEGER key)."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8", "replace"), digest_size=8).digest(),
                          "big", signed=True)


def tokens(message: bytes) -> list[int]:
    return view_tokens(message_text.parse(message))


def view_tokens(view: message_text.MessageView) -> list[int]:
    # The same words come back message after message; hashing each anew was
    # a tenth of scoring. The cache is bounded, and emptied when full.
    if len(_hashes) >= HASH_CACHE:
        _hashes.clear()
    found = []
    for token in view_token_texts(view):
        key = _hashes.get(token)
        if key is None:
            key = _hashes[token] = hashed(token)
        found.append(key)
    return found


HASH_CACHE = 20_000
_hashes: dict[str, int] = {}


def digest(message: bytes) -> bytes:
    """Which message this is, whatever the box added on its way in (Received,
    X-Spam-*, a [SPAM] subject): its Message-ID and its body."""
    head, _, body = message.replace(b"\r\n", b"\n").partition(b"\n\n")
    found = re.search(rb"(?im)^message-id:[ \t]*(.{0,998})$", head)
    message_id = found.group(1).strip() if found else b""
    return hashlib.sha256(message_id + b"\0" + body.rstrip()).digest()
