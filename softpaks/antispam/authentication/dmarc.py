"""DMARC (RFC 7489): the policy the domain of the message's From address
publishes, and whether the message is aligned with it.

- The author domain: the message must have exactly one From field naming
  exactly one address, else the result is permerror.
- The record: a TXT record starting "v=DMARC1" at _dmarc.<author domain>,
  else at _dmarc.<organizational domain> (Public Suffix List). Exactly one
  such record counts; none, several or one without a valid p= is "none".
- Alignment: an SPF pass (the SPF check's result for the MAIL FROM domain,
  taken from the context; SPF is not evaluated twice) or a DKIM pass whose
  domain is the author domain (adkim/aspf=s) or shares its organizational
  domain (r, the default).
- The policy: p=, or sp= when the record was found at the organizational
  domain for a subdomain; pct= applies it to that share of failing mail,
  the rest get the next milder policy (reject -> quarantine -> none).
  Whether a message falls in the share is drawn from a hash of its
  Message-ID (or its bytes), so a resent message is treated the same way.
Reporting (rua, ruf) is not done."""

from __future__ import annotations

import email.utils
import hashlib
from dataclasses import dataclass

from firmware.config.types import is_hostname

from . import dns_txt
from .headers import values
from .org_domain import organizational_domain

POLICIES = ("none", "quarantine", "reject")
MILDER = {"reject": "quarantine", "quarantine": "none", "none": "none"}
MAX_FROM_OCTETS = 2048


@dataclass(frozen=True)
class Record:
    p: str
    sp: str
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"
    at: str = ""                 # the domain it was found at

    def policy_for(self, author_domain: str) -> str:
        return self.sp if author_domain != self.at else self.p


@dataclass(frozen=True)
class Outcome:
    result: str                  # pass | fail | none | temperror | permerror
    domain: str = ""             # the author domain
    published: str = ""          # the policy published for it (p or sp)
    applied: str = "none"        # after pct: what the message is to get
    record: Record | None = None
    reason: str = ""
    aligned_by: str = ""         # "dkim example.com" / "spf example.com"


def parse_record(text: bytes | str, at: str = "") -> Record | None:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    parts = [p.strip() for p in text.split(";")]
    if not parts or parts[0].replace(" ", "") != "v=DMARC1":
        return None
    tags = {}
    for part in parts[1:]:
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip())
    p = tags.get("p", "").lower()
    if p not in POLICIES:
        # RFC 7489 6.6.3: without a valid p= the record is only good for reports.
        return None
    sp = tags.get("sp", "").lower()
    sp = sp if sp in POLICIES else p
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        pct = 100
    pct = min(100, max(0, pct))
    adkim = "s" if tags.get("adkim", "r").lower() == "s" else "r"
    aspf = "s" if tags.get("aspf", "r").lower() == "s" else "r"
    return Record(p, sp, pct, adkim, aspf, at)


def author_domain(message: bytes) -> tuple[str, str]:
    """(domain, "") or ("", why not)."""
    froms = values(message, "from")
    if len(froms) != 1:
        return "", f"{len(froms)} From fields"
    raw = froms[0][:MAX_FROM_OCTETS].decode("utf-8", "replace")
    found = [address for _name, address in email.utils.getaddresses([raw]) if address]
    if len(found) != 1:
        return "", f"{len(found)} From addresses"
    address = found[0]
    if "@" not in address:
        return "", "the From address has no domain"
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return "", "the From domain is not a valid name"
    if not is_hostname(domain) or "." not in domain:
        return "", "the From domain is not a valid name"
    return domain, ""


def pick_record(found: dns_txt.Txt, at: str) -> Record | None:
    records = [r for r in found.records if r.lstrip().startswith(b"v=DMARC1")]
    if len(records) != 1:
        return None
    return parse_record(records[0], at)


async def discover(resolver, settings, domain: str) -> tuple[Record | None, str]:
    """(record or None, temporary failure or "")."""
    at_author = await dns_txt.txt(resolver, settings, f"_dmarc.{domain}")
    if at_author.failed:
        return None, at_author.failure
    record = pick_record(at_author, domain)
    if record is not None:
        return record, ""
    org = organizational_domain(domain)
    if org == domain:
        return None, ""
    at_org = await dns_txt.txt(resolver, settings, f"_dmarc.{org}")
    if at_org.failed:
        return None, at_org.failure
    return pick_record(at_org, org), ""


def aligned(identifier: str, domain: str, mode: str) -> bool:
    identifier = identifier.lower().rstrip(".")
    if mode == "s":
        return identifier == domain
    return bool(identifier) and organizational_domain(identifier) == organizational_domain(domain)


def sampled(pct: int, key: bytes) -> bool:
    """Whether a message falls in the pct share the policy applies to."""
    if pct >= 100:
        return True
    if pct <= 0:
        return False
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100 < pct


def sample_key(message: bytes) -> bytes:
    ids = values(message, "message-id")
    return ids[0].strip() if ids and ids[0].strip() else message


def evaluate(domain: str, record: Record | None, dkim_passes: list[str], spf: tuple[str, str],
             key: bytes) -> Outcome:
    """dkim_passes: the d= of each passing signature; spf: (result, domain)."""
    if record is None:
        return Outcome("none", domain, reason=f"{domain} publishes no DMARC policy")
    published = record.policy_for(domain)
    for d in dkim_passes:
        if aligned(d, domain, record.adkim):
            return Outcome("pass", domain, published, "none", record, aligned_by=f"dkim {d}")
    spf_result, spf_domain = spf
    if spf_result == "pass" and aligned(spf_domain, domain, record.aspf):
        return Outcome("pass", domain, published, "none", record, aligned_by=f"spf {spf_domain}")
    applied = published if sampled(record.pct, key) else MILDER[published]
    why = "no aligned DKIM signature or SPF pass"
    if applied != published:
        why += f"; pct={record.pct} leaves this message out"
    return Outcome("fail", domain, published, applied, record, reason=why)
