"""Anti-Spam > Lists: black and whitelists for the server, a domain or a user.

Entries are
- an IP address or network (192.0.2.7, 192.0.2.0/24, 2001:db8::/32): matches
  the client's address (an IPv4-mapped IPv6 client as its IPv4 address);
- a domain (example.com): matches the envelope sender's domain and the
  client's verified PTR name (forward-confirmed: see ptr.py), each when it is
  the domain itself or one of its subdomains, as ISMail has it: example.com
  covers mail.example.com too. Wildcards (*.example.com) are refused, since
  the plain domain already means that;
- an address (jsmith@example.com): matches the envelope sender.

Everything is decided at the SMTP level, from the client's address, its
verified name and the envelope, never from the message's headers. HELO
names are not matched: a client chooses its own.

Levels, each a black and a whitelist:
- server: all mail;
- domain: mail to or from one local domain (scope: that domain);
- user: mail to one local address (scope: that address).

Precedence, for each recipient: the user level over the domain level over
the server level; within one level the whitelist over the blacklist. The
first level where any entry matches decides. So a user may whitelist a
sender the server blacklists, and a domain may blacklist a sender the server
whitelists.

A whitelisted sender or client skips the filtering layers after the lists
(DNSBL, reverse DNS, greylisting, the content layers): ctx.whitelisted. A
blacklisted one is refused with `554 5.7.1`, naming the level and the entry.
Clients that may relay (Trusted Networks, authenticated) are not looked at.

Counted as antispam_lists=passed (whitelisted) and =rejected (blacklisted);
a recipient no entry speaks about is not counted."""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from dataclasses import dataclass, field

from firmware.config import transaction
from firmware.config.types import is_hostname
from firmware.mail import addresses
from firmware.mail.policy import Check, Context, Order, reject
from firmware.mail.route import local_domains

from . import ptr
from .access import as_plain_address, client_address

CHECK_NAME = "antispam_lists"
LEVELS = ("user", "domain", "server")      # in precedence order
COLORS = ("white", "black")                # in precedence order
SERVER, DOMAIN, USER = "server", "domain", "user"
MAX_ENTRY = 320

_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]\\]{1,64}@[^@\s]+$")
_LOOKS_NUMERIC = re.compile(r"^[0-9.]+(/\d+)?$")

log = logging.getLogger("gatebox.antispam")


class ListError(ValueError):
    """A list change refused; the text is meant for the administrator."""


@dataclass(frozen=True)
class Entry:
    level: str
    scope: str
    color: str
    entry: str
    added: float = 0.0

    @property
    def kind(self) -> str:
        return entry_kind(self.entry)

    @property
    def where(self) -> str:
        """'the server blacklist', 'the whitelist of domain example.com', ..."""
        name = f"{self.color}list"
        if self.level == SERVER:
            return f"the server {name}"
        return f"the {name} of {self.level} {self.scope}"


# ---- entries ------------------------------------------------------------------
def _ip_entry(text: str) -> str:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ListError(f"'{text}' is not an IP address or network such as 192.0.2.7, "
                        "192.0.2.0/24 or 2001:db8::/32") from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and \
            as_plain_address(network[0]).version == 4:
        # ::ffff:192.0.2.0/120 is how an IPv4 network looks from an IPv6 socket.
        network = ipaddress.ip_network(f"{as_plain_address(network[0])}/"
                                       f"{network.prefixlen - 96}")
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network)


def validate_entry(text: str) -> str:
    """The entry in its stored form: an IP address or network as Python
    writes it (192.0.2.0/24; a single address without /32), a domain in lower
    case, an address as local@domain in lower case. Raises ListError (a
    ValueError) saying what an entry may be."""
    text = str(text or "").strip()
    if not text:
        raise ListError("give an entry: an IP address or network, a domain or an email address")
    if len(text) > MAX_ENTRY:
        raise ListError(f"'{text[:40]}...' is too long for an entry")
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if "@" in text:
        if not _ADDRESS.match(text):
            raise ListError(f"'{text}' is not an email address such as jsmith@example.com")
        local, _, domain = text.rpartition("@")
        domain = domain.rstrip(".").lower()
        if not _is_domain(domain):
            raise ListError(f"'{text}': '{domain}' is not a domain such as example.com")
        return f"{local.lower()}@{domain}"
    if "-" in text and all(_LOOKS_NUMERIC.match(p.strip()) or ":" in p for p in text.split("-", 1)):
        raise ListError(f"'{text}': ranges are not list entries; give a network such as "
                        "192.0.2.0/24 (ranges belong in Blocked IP Addresses)")
    if ":" in text or _LOOKS_NUMERIC.match(text):
        return _ip_entry(text)
    if text.startswith("*.") or text.startswith("."):
        raise ListError(f"'{text}': write the domain alone ({text.lstrip('*.')}); "
                        "a domain entry covers its subdomains too")
    domain = text.rstrip(".").lower()
    if not _is_domain(domain):
        raise ListError(f"'{text}' is not an IP address or network, a domain such as "
                        "example.com or an email address such as jsmith@example.com")
    return domain


def _is_domain(text: str) -> bool:
    labels = text.split(".")
    return (len(labels) >= 2 and is_hostname(text) and not labels[-1].isdigit())


def entry_kind(entry: str) -> str:
    """'address', 'ip' or 'domain' for a stored entry."""
    if "@" in entry:
        return "address"
    if ":" in entry or _LOOKS_NUMERIC.match(entry):
        return "ip"
    return "domain"


# ---- levels -------------------------------------------------------------------
def resolve_scope(store, domain: str | None = None, user: str | None = None,
                  settings=None) -> tuple[str, str]:
    """(level, scope) for the options of a list command: the server level,
    a local domain, or a local address (a bare name gets the Domain Name)."""
    if domain and user:
        raise ListError("give a domain or a user, not both")
    if not domain and not user:
        return SERVER, ""
    settings = settings if settings is not None else store.snapshot()
    ours = local_domains(settings)
    if domain:
        name = domain.strip().rstrip(".").lower()
        if not _is_domain(name):
            raise ListError(f"'{domain}' is not a domain such as example.com")
        if "*" not in ours and name not in ours:
            raise ListError(f"'{name}' is not a local domain of this box "
                            f"(local domains: {', '.join(sorted(ours))})")
        return DOMAIN, name
    text = user.strip().lower()
    if "@" not in text:
        if "*" in ours:
            raise ListError(f"user '{user}': give the full address (the Domain Name is '*')")
        text = f"{text}@{settings['email.domain']}"
    if not _ADDRESS.match(text):
        raise ListError(f"user '{user}' is not a user name or an address such as bob@example.com")
    user_domain = text.rpartition("@")[2]
    if "*" not in ours and user_domain not in ours:
        raise ListError(f"user '{text}': '{user_domain}' is not a local domain of this box "
                        f"(local domains: {', '.join(sorted(ours))})")
    return USER, text


def _color(color: str) -> str:
    if color not in COLORS:
        raise ListError(f"'{color}': a list is 'white' or 'black'")
    return color


def add(store, color: str, entry: str, *, domain: str | None = None, user: str | None = None,
        actor: str = "system") -> Entry:
    """Put an entry on the server list, a local domain's or a local user's."""
    color, entry = _color(color), validate_entry(entry)
    level, scope = resolve_scope(store, domain, user)
    made = Entry(level, scope, color, entry, time.time())
    with transaction(store.db):
        other = "black" if color == "white" else "white"
        if _exists(store, level, scope, other, entry):
            raise ListError(f"{entry} is on {Entry(level, scope, other, entry).where}; "
                            "remove it there first")
        if _exists(store, level, scope, color, entry):
            raise ListError(f"{entry} is already on {made.where}")
        store.db.execute("INSERT INTO antispam_lists(level, scope, color, entry, added) "
                         "VALUES(?, ?, ?, ?, ?)", [level, scope, color, entry, made.added])
        _record(store, actor, f"add {entry} to {made.where}")
    return made


def remove(store, color: str, entry: str, *, domain: str | None = None, user: str | None = None,
           actor: str = "system") -> Entry:
    color, entry = _color(color), validate_entry(entry)
    level, scope = named_scope(store, domain, user)
    gone = Entry(level, scope, color, entry)
    with transaction(store.db):
        if store.db.execute("DELETE FROM antispam_lists WHERE level = ? AND scope = ? AND "
                            "color = ? AND entry = ?", [level, scope, color, entry]).rowcount == 0:
            raise ListError(f"{entry} is not on {gone.where}")
        _record(store, actor, f"remove {entry} from {gone.where}")
    return gone


def named_scope(store, domain, user) -> tuple[str, str]:
    """As resolve_scope, except that a domain which is no longer local still
    names its lists, so that what was left behind can be removed."""
    try:
        return resolve_scope(store, domain, user)
    except ListError:
        if domain and not user:
            return DOMAIN, domain.strip().rstrip(".").lower()
        if user and not domain and "@" in user:
            return USER, user.strip().lower()
        raise


def entries(store, level: str | None = None, scope: str | None = None) -> list[Entry]:
    """Every entry, or a level's, or one scope's: server first, then the
    domains, then the users; white before black."""
    where, values = [], []
    if level is not None:
        if level not in LEVELS:
            raise ListError(f"'{level}': a level is server, domain or user")
        where.append("level = ?")
        values.append(level)
    if scope is not None:
        where.append("scope = ?")
        values.append(scope.lower())
    rows = store.db.execute("SELECT level, scope, color, entry, added FROM antispam_lists" +
                            (" WHERE " + " AND ".join(where) if where else ""), values)
    found = [Entry(*row) for row in rows]
    return sorted(found, key=lambda e: (-LEVELS.index(e.level), e.scope, COLORS.index(e.color),
                                        e.entry))


def _exists(store, level, scope, color, entry) -> bool:
    return store.db.execute("SELECT 1 FROM antispam_lists WHERE level = ? AND scope = ? AND "
                            "color = ? AND entry = ?", [level, scope, color, entry]).fetchone() \
        is not None


def _record(store, actor: str, what: str):
    """Audited, and the settings generation moves so running smtpd reloads."""
    store.audit(actor, what)
    store._bump_generation()


# ---- matching -----------------------------------------------------------------
@dataclass
class ColorList:
    """One list's entries, by kind, for matching."""
    networks: list = field(default_factory=list)    # (network, entry)
    domains: dict = field(default_factory=dict)     # domain -> entry
    addresses: dict = field(default_factory=dict)   # address -> entry

    def add(self, entry: str):
        kind = entry_kind(entry)
        if kind == "ip":
            self.networks.append((ipaddress.ip_network(entry, strict=False), entry))
        elif kind == "domain":
            self.domains[entry] = entry
        else:
            self.addresses[entry] = entry


@dataclass(frozen=True)
class Facts:
    """What the lists look at: the client's address, the envelope sender
    (lower case) and its domain. Verified PTR names are asked for only when
    a list that could decide holds domains (see Lists.decide)."""
    client: object                  # ip_address or None
    sender: str = ""
    sender_domain: str = ""


@dataclass(frozen=True)
class Match:
    entry: Entry
    subject: str                    # what matched: "client [192.0.2.7]", "sender <a@b>", ...


def _domain_match(domains: dict, name: str) -> str | None:
    labels = name.split(".")
    for start in range(len(labels) - 1):
        found = domains.get(".".join(labels[start:]))
        if found is not None:
            return found
    return None


def match_list(colored: ColorList, facts: Facts, names: tuple = ()) -> tuple[str, str] | None:
    """(entry, subject) of the first entry of one list that matches, or None."""
    if facts.client is not None:
        for network, entry in colored.networks:
            if facts.client.version == network.version and facts.client in network:
                return entry, f"client [{facts.client}]"
    if facts.sender and facts.sender in colored.addresses:
        return colored.addresses[facts.sender], f"sender <{facts.sender}>"
    if facts.sender_domain:
        found = _domain_match(colored.domains, facts.sender_domain)
        if found is not None:
            return found, f"sender domain {facts.sender_domain}"
    for name in names:
        found = _domain_match(colored.domains, name)
        if found is not None:
            return found, f"client {name}"
    return None


class Lists:
    """Every list, compiled for matching: {(level, scope): {color: ColorList}}."""

    def __init__(self, rows):
        self.by_scope: dict = {}
        for row in rows:
            colors = self.by_scope.setdefault((row.level, row.scope), {})
            colors.setdefault(row.color, ColorList()).add(row.entry)

    def scopes_for(self, recipient: str, recipient_domain: str, sender_domain: str):
        """[(level, scope)] that apply to one recipient, in precedence order."""
        wanted = [(USER, recipient), (DOMAIN, recipient_domain)]
        if sender_domain and sender_domain != recipient_domain:
            wanted.append((DOMAIN, sender_domain))
        wanted.append((SERVER, ""))
        return [key for key in wanted if key in self.by_scope]

    def needs_names(self, scopes, match: Match | None) -> bool:
        """Whether a verified PTR name could change `match` (found without
        one): a domain entry at a level before the match's, or a whitelisted
        domain at the same level as a blacklist match."""
        for level_scope in scopes:
            colors = self.by_scope[level_scope]
            if match is None:
                overriding = colors.values()
            else:
                rank, decided = LEVELS.index(level_scope[0]), LEVELS.index(match.entry.level)
                if rank < decided:
                    overriding = colors.values()
                elif rank == decided and match.entry.color == "black":
                    overriding = [colors.get("white")]
                else:
                    overriding = []
            if any(colored is not None and colored.domains for colored in overriding):
                return True
        return False

    def decide(self, scopes, facts: Facts, names: tuple = ()) -> Match | None:
        """The deciding match: the first level with any match; in it, a
        whitelist match before a blacklist one."""
        for level in LEVELS:
            keys = [key for key in scopes if key[0] == level]
            for color in COLORS:
                for level_scope in keys:
                    colored = self.by_scope[level_scope].get(color)
                    found = match_list(colored, facts, names) if colored else None
                    if found is not None:
                        entry, subject = found
                        return Match(Entry(level, level_scope[1], color, entry), subject)
        return None


def facts_of(ctx: Context) -> Facts:
    sender = addresses.parse(ctx.sender) if ctx.sender else None
    sender_address = sender.address.lower() if sender and sender.domain else ""
    return Facts(client_address(ctx.client_ip), sender_address,
                 sender.domain.rstrip(".") if sender and sender.domain else "")


class ListsCheck:
    """The rcpt check. The lists are read again whenever the settings
    generation moves (every list change moves it)."""

    def __init__(self, store):
        self.store = store
        self._generation = None
        self._lists = Lists(())

    def lists(self, settings) -> Lists:
        generation = getattr(settings, "generation", None)
        if generation is None or generation != self._generation:
            self._lists = Lists(entries(self.store))
            self._generation = generation
        return self._lists

    async def __call__(self, ctx: Context):
        ctx.whitelisted = False
        if ctx.may_relay:
            return None
        lists = self.lists(ctx.settings)
        if not lists.by_scope:
            return None
        recipient = addresses.parse(ctx.recipient)
        facts = facts_of(ctx)
        scopes = lists.scopes_for(f"{recipient.local.lower()}@{recipient.domain}",
                                  recipient.domain, facts.sender_domain)
        if not scopes:
            return None
        match = lists.decide(scopes, facts)
        if lists.needs_names(scopes, match):
            # DNS is asked only when a verified name could change the answer,
            # and then once per session.
            match = lists.decide(scopes, facts, await ptr.verified_names(ctx))
        if match is None:
            return None
        if match.entry.color == "white":
            ctx.whitelisted = True
            ctx.count_result(CHECK_NAME, "passed")
            log.info("%s: whitelisted for <%s>: %s is on %s (entry %s)", ctx.client_ip,
                     ctx.recipient, match.subject, match.entry.where, match.entry.entry)
            return None
        ctx.count_result(CHECK_NAME, "rejected")
        return reject("5.7.1", f"Service unavailable; {match.subject} is on "
                               f"{match.entry.where} (entry {match.entry.entry})", 554)


def policy_checks(store) -> list[Check]:
    # A broken list (a locked database) must not defer all inbound mail: skip.
    return [Check(CHECK_NAME, "rcpt", ListsCheck(store), order=Order.REPUTATION, asks_dns=True,
                  on_error="skip")]
