"""Anti-Spam > Greylist: mail from a (client network, envelope sender,
recipient) triplet not seen before is deferred once with 451 4.7.1; a real
server retries, most spam software does not.

- The network is the client's /24 (IPv4) or /64 (IPv6), so a provider's pool
  of outbound servers, retrying from another address, still matches. An
  IPv4-mapped IPv6 address counts as its IPv4 address.
- Sender and recipient are lower-cased; BATV (prvs=TAG=user@, btv1==TAG==user@)
  and SRS (SRS0=HHH=TT=domain=local@, SRS1=...) rewrite the sender for every
  message, so their tags are taken off first. The null sender is "".
- A retry before the Initial Block Period is deferred again; one after it,
  within the Block Period Lifetime counted from the first attempt, passes.
  A triplet not retried within the lifetime is forgotten: the next attempt
  starts afresh. A passed triplet stays valid for the Pass Record Lifetime,
  counted from its last use.
- Auto-whitelist: a network that has passed N triplets (0: never) skips the
  greylist for the Pass Record Lifetime after its last mail.
- Exempt: Trusted Networks, authenticated clients, whitelisted entries (the
  lists check runs first), and optionally mail whose SPF passes from a client
  with forward-confirmed reverse DNS. That last exemption reads the SPF result
  the core's Address Verification check adds at MAIL FROM: with Email Server >
  Address Verification > SPF off there is no result, and it never applies.

The clock is injectable, so tests run the periods without waiting; the
database rows are the state, so every smtpd session and the web page see the
same greylist."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from dataclasses import dataclass

from firmware.config import db as database, transaction
from firmware.mail.policy import Check, Context, Order, tempfail
from firmware.mail.verify import my_mx

from . import rdns
from .settings import (GREYLIST, GREYLIST_AUTO_WHITELIST, GREYLIST_EXEMPT_SPF_FCRDNS,
                       GREYLIST_INITIAL_MIN, GREYLIST_LIFETIME_MIN, GREYLIST_PASS_DAYS)

CHECK_NAME = "greylist"
DEFER_CODE, DEFER_STATUS, DEFER_TEXT = 451, "4.7.1", "Greylisted, try again later"
PASS, DEFER = "pass", "defer"
DAY = 86400.0
PRUNE_EVERY = 300.0        # seconds between two cleanups started by the check
PRUNE_BATCH = 5000         # rows one cleanup removes at most, so a check never stalls long
MAX_PENDING = 200_000      # pending triplets kept at most (strangers make them)
MAX_FIELD = 320            # the longest address RFC 5321 allows, near enough

log = logging.getLogger("gatebox.smtpd")


# ---- the triplet ---------------------------------------------------------------------

def network_of(text: str) -> str:
    """'192.0.2.7' -> '192.0.2.0/24', '2001:db8:1:2::5' -> '2001:db8:1:2::/64',
    '::ffff:192.0.2.7' -> '192.0.2.0/24'. A network no wider than the group
    (as `show` prints it) gives its group; anything else is a ValueError."""
    text = text.strip()
    if "/" in text:
        given = ipaddress.ip_network(text, strict=False)
        address = given.network_address
    else:
        given, address = None, ipaddress.ip_address(text)
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
        if given is not None:
            given = ipaddress.ip_network(f"{address}/{max(given.prefixlen - 96, 0)}", strict=False)
    prefix = 24 if address.version == 4 else 64
    if given is not None and given.prefixlen < prefix:
        raise ValueError(f"{text}: the greylist groups clients by /{prefix}; "
                         "give an address or a network no wider than that")
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


_BATV = re.compile(r"^(?:prvs|msprvs\d*)=[^=@]+=(?P<local>[^@]+)$|^btv1==[^=@]+==(?P<btv>[^@]+)$")
# SRS0=HASH=TT=domain=local and SRS1=HASH=forwarder==HASH=TT=domain=local;
# the separator after SRS0/SRS1 may be =, + or -.
_SRS0 = re.compile(r"^srs0[=+-][^=]*=[^=]*=(?P<domain>[^=]+)=(?P<local>.+)$")
_SRS1 = re.compile(r"^srs1[=+-][^=]*=[^=]*==[^=]*=[^=]*=(?P<domain>[^=]+)=(?P<local>.+)$")


def plain_sender(sender: str) -> str:
    """The envelope sender as the greylist keys it: lower-case, without BATV
    or SRS tags (in either order, nested), '' for the null sender."""
    address = sender.strip().strip("<>").strip().lower()[:MAX_FIELD]
    for _ in range(4):
        local, at, domain = address.rpartition("@")
        if not at:
            return address
        batv = _BATV.match(local)
        if batv:
            address = f"{batv['local'] or batv['btv']}@{domain}"
            continue
        srs = _SRS1.match(local) or _SRS0.match(local)
        if srs:
            address = f"{srs['local']}@{srs['domain']}"
            continue
        break
    return address


def plain_recipient(recipient: str) -> str:
    return recipient.strip().strip("<>").strip().lower()[:MAX_FIELD]


@dataclass(frozen=True)
class Triplet:
    network: str
    sender: str
    recipient: str


def triplet(client: str, sender: str, recipient: str) -> Triplet:
    """client: an address or a network (see network_of)."""
    return Triplet(network_of(client), plain_sender(sender), plain_recipient(recipient))


# ---- the periods ---------------------------------------------------------------------

@dataclass(frozen=True)
class Periods:
    initial: float        # seconds a retry must wait
    lifetime: float       # seconds a pending triplet is kept, from its first attempt
    pass_life: float      # seconds a passed triplet is kept, from its last use
    auto_whitelist: int   # passed triplets that whitelist a network; 0: never

    @classmethod
    def of(cls, settings) -> "Periods":
        """settings: a Snapshot or the Store (anything with [key] or .get(key))."""
        get = settings.get if hasattr(settings, "get") else settings.__getitem__
        initial = get(GREYLIST_INITIAL_MIN) * 60.0
        # A lifetime shorter than the initial period would defer every new
        # sender forever: a retry always gets at least RETRY_WINDOW to pass.
        lifetime = get(GREYLIST_LIFETIME_MIN) * 60.0
        if lifetime <= initial:
            lifetime = initial + RETRY_WINDOW
        return cls(initial, lifetime, get(GREYLIST_PASS_DAYS) * DAY, get(GREYLIST_AUTO_WHITELIST))


@dataclass(frozen=True)
class Decision:
    action: str           # pass | defer
    reason: str

    @property
    def passed(self) -> bool:
        return self.action == PASS


# ---- the greylist --------------------------------------------------------------------

# A passed record is renewed at most this often (its lifetime is in days).
RENEW_SECONDS = 3600.0
RETRY_WINDOW = 600.0
# Pending triplets kept at most, per client network and in all: a stranger
# sending to random addresses must neither grow the table without bound nor
# push out the real senders still waiting out their period. Past a cap the
# attempt is deferred without being recorded.
PENDING_PER_NETWORK = 50
PENDING_TOTAL = 200_000


class Greylist:
    def __init__(self, store, clock=time.time):
        self.store = store
        self.clock = clock
        self._pruned_at: float | None = None

    def decide(self, network: str, sender: str, recipient: str, now: float | None = None,
               settings=None) -> Decision:
        """Pass or defer this attempt, and record it. network: the client's
        address or its network; settings: a Snapshot (default: the store's)."""
        now = self.clock() if now is None else now
        periods = Periods.of(self.store if settings is None else settings)
        key = triplet(network, sender, recipient)
        with database.writer(self.store.path) as db:
            known = self._recently_passed(db, key, now, periods)
            if known is not None:
                return known
            return self._decide_writing(db, key, now, periods)

    def recently_passed(self, network: str, sender: str, recipient: str, settings) -> Decision | None:
        """The common case, on the caller's thread (the event loop): a read
        of the store's connection, no write, no wait on the disk."""
        return self._recently_passed(self.store.db, triplet(network, sender, recipient),
                                     self.clock(), Periods.of(settings))

    def _decide_writing(self, db, key: Triplet, now: float, periods: Periods) -> Decision:
        with transaction(db):
            if periods.auto_whitelist and _network_whitelisted(db, key.network, now, periods):
                db.execute("UPDATE greylist_networks SET last_seen = ? WHERE network = ?",
                           [now, key.network])
                return Decision(PASS, f"network {key.network} is auto-whitelisted")
            row = db.execute("SELECT first_seen, last_seen, passed FROM greylist_triplets "
                             "WHERE network = ? AND sender = ? AND recipient = ?",
                             [key.network, key.sender, key.recipient]).fetchone()
            if row is not None:
                first_seen, last_seen, passed = row
                if passed is not None and 0 <= now - last_seen <= periods.pass_life:
                    _touch(db, key, now)
                    return Decision(PASS, "passed before")
                age = now - first_seen
                if passed is None and 0 <= age <= periods.lifetime:
                    if age < periods.initial:
                        _touch(db, key, now)
                        return Decision(DEFER, f"retried after {age:.0f}s, before the initial "
                                               f"block period of {periods.initial:.0f}s")
                    self._pass(db, key, now, periods)
                    return Decision(PASS, f"retried after {age:.0f}s")
            # New, forgotten (pending past its lifetime) or expired (passed too long ago).
            if row is None:
                full = _pending_full(db, key.network)
                if full:
                    return Decision(DEFER, full)
            db.execute("INSERT OR REPLACE INTO greylist_triplets(network, sender, recipient, "
                       "first_seen, last_seen, passed) VALUES (?, ?, ?, ?, ?, NULL)",
                       [key.network, key.sender, key.recipient, now, now])
            return Decision(DEFER, "first attempt" if row is None else "first attempt again "
                                   "(the earlier record expired)")

    @staticmethod
    def _recently_passed(db, key: Triplet, now: float, periods: Periods) -> Decision | None:
        """The common case, answered without a write: a triplet (or network)
        that passed and was renewed less than RENEW_SECONDS ago. Renewing it
        on every message would cost a durable transaction (a disk sync) per
        recipient for a lifetime counted in days."""
        if periods.auto_whitelist:
            row = db.execute("SELECT whitelisted, last_seen FROM greylist_networks "
                             "WHERE network = ?", [key.network]).fetchone()
            if row is not None and row[0] is not None and row[1] is not None \
                    and 0 <= now - row[1] <= min(RENEW_SECONDS, periods.pass_life):
                return Decision(PASS, f"network {key.network} is auto-whitelisted")
        row = db.execute("SELECT last_seen, passed FROM greylist_triplets WHERE network = ? AND "
                         "sender = ? AND recipient = ?",
                         [key.network, key.sender, key.recipient]).fetchone()
        if row is not None and row[1] is not None \
                and 0 <= now - row[0] <= min(RENEW_SECONDS, periods.pass_life):
            return Decision(PASS, "passed before")
        return None

    @staticmethod
    def _pass(db, key: Triplet, now: float, periods: Periods):
        db.execute("UPDATE greylist_triplets SET passed = ?, last_seen = ? "
                   "WHERE network = ? AND sender = ? AND recipient = ?",
                   [now, now, key.network, key.sender, key.recipient])
        db.execute("INSERT INTO greylist_networks(network, passed, last_seen) VALUES (?, 1, ?) "
                   "ON CONFLICT(network) DO UPDATE SET passed = passed + 1, "
                   "last_seen = excluded.last_seen", [key.network, now])
        if periods.auto_whitelist:
            db.execute("UPDATE greylist_networks SET whitelisted = ? WHERE network = ? "
                       "AND whitelisted IS NULL AND passed >= ?",
                       [now, key.network, periods.auto_whitelist])

    def prune(self, now: float | None = None, settings=None, limit: int = PRUNE_BATCH) -> int:
        """Remove what expired: pending triplets past the Block Period Lifetime,
        passed ones and auto-whitelisted networks unused for the Pass Record
        Lifetime, networks with nothing left to count, and the oldest pending
        triplets past MAX_PENDING. At most `limit` rows per table. Returns the
        number removed."""
        now = self.clock() if now is None else now
        periods = Periods.of(self.store if settings is None else settings)
        with database.writer(self.store.path) as db, transaction(db):
            gone = db.execute(
                "DELETE FROM greylist_triplets WHERE rowid IN (SELECT rowid FROM greylist_triplets "
                "WHERE (passed IS NULL AND first_seen < ?) OR (passed IS NOT NULL AND "
                "last_seen < ?) OR last_seen > ? LIMIT ?)",
                [now - periods.lifetime, now - periods.pass_life, now + DAY, limit]).rowcount
            extra = db.execute("SELECT COUNT(*) FROM greylist_triplets WHERE passed IS NULL"
                               ).fetchone()[0] - MAX_PENDING
            if extra > 0:
                gone += db.execute(
                    "DELETE FROM greylist_triplets WHERE rowid IN (SELECT rowid FROM "
                    "greylist_triplets WHERE passed IS NULL ORDER BY first_seen LIMIT ?)",
                    [min(extra, limit)]).rowcount
            # A network's count is of its live pass records: with none left and
            # no whitelisting it starts again from nothing.
            gone += db.execute(
                "DELETE FROM greylist_networks WHERE rowid IN (SELECT rowid FROM greylist_networks "
                "n WHERE (n.whitelisted IS NOT NULL AND COALESCE(n.last_seen, n.whitelisted) < ?) "
                "OR (n.whitelisted IS NULL AND NOT EXISTS (SELECT 1 FROM greylist_triplets t "
                "WHERE t.network = n.network AND t.passed IS NOT NULL)) LIMIT ?)",
                [now - periods.pass_life, limit]).rowcount
        self._pruned_at = now
        return gone

    def prune_due(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        return self._pruned_at is None or not 0 <= now - self._pruned_at < PRUNE_EVERY

    def prune_if_due(self, now: float | None = None, settings=None) -> int:
        """prune() at most every PRUNE_EVERY seconds (the check calls this)."""
        now = self.clock() if now is None else now
        if not self.prune_due(now):
            return 0
        gone = self.prune(now, settings)
        if gone:
            log.info("greylist: %d expired records removed", gone)
        return gone


def _pending_full(db, network: str) -> str:
    """Why no new triplet may be recorded now, or ''."""
    mine = db.execute("SELECT COUNT(*) FROM greylist_triplets WHERE network = ? AND passed IS NULL",
                      [network]).fetchone()[0]
    if mine >= PENDING_PER_NETWORK:
        return f"{network} has {mine} triplets waiting already; not recorded"
    total = db.execute("SELECT COUNT(*) FROM greylist_triplets WHERE passed IS NULL").fetchone()[0]
    if total >= PENDING_TOTAL:
        return f"{total} triplets are waiting already; not recorded"
    return ""


def _network_whitelisted(db, network: str, now: float, periods: Periods) -> bool:
    row = db.execute("SELECT whitelisted, last_seen FROM greylist_networks WHERE network = ?",
                     [network]).fetchone()
    if row is None or row[0] is None:
        return False
    return now - (row[1] if row[1] is not None else row[0]) <= periods.pass_life


def _touch(db, key: Triplet, now: float):
    db.execute("UPDATE greylist_triplets SET last_seen = ? "
               "WHERE network = ? AND sender = ? AND recipient = ?",
               [now, key.network, key.sender, key.recipient])


# ---- exemptions ----------------------------------------------------------------------

def spf_passed(ctx: Context) -> bool:
    return any(result.method == "spf" and result.result == "pass" for result in ctx.auth_results)


async def exempt_by_spf_and_fcrdns(ctx: Context) -> str | None:
    """The client's confirmed name when the SPF/FCrDNS exemption applies."""
    if not ctx.settings[GREYLIST_EXEMPT_SPF_FCRDNS] or not spf_passed(ctx) or ctx.resolver is None:
        return None
    # The reverse DNS layer's lookup (sharing the resolver's cache with its
    # check); None also when DNS could not tell: the greylist then applies.
    return await rdns.forward_confirmed_name(ctx.client_ip, ctx.settings, ctx.resolver)


# ---- the check -----------------------------------------------------------------------

def greylist_check(store, clock=time.time) -> Check:
    greylist = Greylist(store, clock)

    async def check(ctx: Context):
        settings = ctx.settings
        if not settings[GREYLIST] or ctx.may_relay or ctx.whitelisted:
            return None
        try:
            key = triplet(ctx.client_ip, ctx.sender, ctx.recipient)
        except ValueError:
            return None     # no IP client (a local socket): nothing to group by
        if await exempt_by_spf_and_fcrdns(ctx):
            return None
        if await my_mx.is_isp_server(ctx):
            return None     # the ISP delivering what ETRN or the finger asked for
        # Writes, durable before the answer, go to a worker thread, not the loop.
        if greylist.prune_due():
            await asyncio.to_thread(greylist.prune_if_due, settings=settings)
        decision = greylist.recently_passed(key.network, key.sender, key.recipient, settings)
        if decision is None:
            decision = await asyncio.to_thread(greylist.decide, key.network, key.sender,
                                               key.recipient, settings=settings)
        if decision.passed:
            ctx.count_result(CHECK_NAME, "passed")
            return None
        ctx.count_result(CHECK_NAME, "deferred")
        log.info("greylist: deferred client=[%s] network=%s from=<%s> to=<%s>: %s",
                 ctx.client_ip, key.network, key.sender, key.recipient, decision.reason)
        return tempfail(DEFER_STATUS, DEFER_TEXT, DEFER_CODE)
    # "skip" on a failure: a broken greylist lets mail through to the layers
    # after it rather than deferring all of it. DNS is asked only for the
    # optional exemption, whose failures already mean "not exempt".
    return Check(CHECK_NAME, "rcpt", check, order=Order.REPUTATION + 30, on_error="skip",
                 budget=rdns.CHECK_SECONDS, asks_dns=True)


def policy_checks(store) -> list:
    return [greylist_check(store)]


# ---- for the page and the CLI --------------------------------------------------------

@dataclass(frozen=True)
class Pending:
    network: str
    sender: str
    recipient: str
    first_seen: float
    last_seen: float
    age: float            # seconds since the first attempt
    passes_in: float      # seconds until a retry passes (0: the next retry passes)


@dataclass(frozen=True)
class WhitelistedNetwork:
    network: str
    passed: int           # triplets it passed
    whitelisted: float    # when it was whitelisted
    last_seen: float


@dataclass(frozen=True)
class Counts:
    pending: int          # triplets waiting for their retry
    passed: int           # valid pass records
    whitelisted: int      # auto-whitelisted networks


def pending(store, now: float | None = None, limit: int = 500) -> list[Pending]:
    """Triplets waiting for a retry within their lifetime, newest first."""
    now = time.time() if now is None else now
    periods = Periods.of(store)
    rows = store.db.execute(
        "SELECT network, sender, recipient, first_seen, last_seen FROM greylist_triplets "
        "WHERE passed IS NULL AND first_seen >= ? ORDER BY first_seen DESC LIMIT ?",
        [now - periods.lifetime, limit]).fetchall()
    return [Pending(network, sender, recipient, first, last, max(now - first, 0.0),
                    max(periods.initial - (now - first), 0.0))
            for network, sender, recipient, first, last in rows]


def passed_count(store, now: float | None = None) -> int:
    now = time.time() if now is None else now
    return store.db.execute("SELECT COUNT(*) FROM greylist_triplets WHERE passed IS NOT NULL "
                            "AND last_seen >= ?", [now - Periods.of(store).pass_life]).fetchone()[0]


def whitelisted_networks(store, now: float | None = None) -> list[WhitelistedNetwork]:
    now = time.time() if now is None else now
    rows = store.db.execute(
        "SELECT network, passed, whitelisted, COALESCE(last_seen, whitelisted) FROM "
        "greylist_networks WHERE whitelisted IS NOT NULL AND COALESCE(last_seen, whitelisted) >= ? "
        "ORDER BY network", [now - Periods.of(store).pass_life]).fetchall()
    return [WhitelistedNetwork(*row) for row in rows]


def counts(store, now: float | None = None) -> Counts:
    now = time.time() if now is None else now
    periods = Periods.of(store)
    waiting = store.db.execute("SELECT COUNT(*) FROM greylist_triplets WHERE passed IS NULL "
                               "AND first_seen >= ?", [now - periods.lifetime]).fetchone()[0]
    return Counts(waiting, passed_count(store, now), len(whitelisted_networks(store, now)))


def pass_now(store, network: str, sender: str, recipient: str, actor: str = "system",
             now: float | None = None) -> Triplet:
    """The page's and the CLI's Pass now: the triplet passes from now on, as
    if it had been retried. It does not count towards the network's
    auto-whitelist (no server proved it retries). Raises ValueError for a
    malformed network."""
    now = time.time() if now is None else now
    key = triplet(network, sender, recipient)
    with transaction(store.db):
        store.db.execute(
            "INSERT INTO greylist_triplets(network, sender, recipient, first_seen, last_seen, passed) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(network, sender, recipient) DO UPDATE SET "
            "passed = excluded.passed, last_seen = excluded.last_seen",
            [key.network, key.sender, key.recipient, now, now, now])
        store.audit(actor, f"greylist: pass now {key.network} <{key.sender}> -> <{key.recipient}>")
    return key


def forget(store, network: str, sender: str | None = None, recipient: str | None = None,
           actor: str = "system") -> int:
    """Forget one triplet, or with only a network everything of it (its
    triplets and its auto-whitelisting). Returns the rows removed."""
    with transaction(store.db):
        if sender is None and recipient is None:
            net = network_of(network)
            gone = store.db.execute("DELETE FROM greylist_triplets WHERE network = ?",
                                    [net]).rowcount
            gone += store.db.execute("DELETE FROM greylist_networks WHERE network = ?",
                                     [net]).rowcount
            what = f"network {net}"
        else:
            key = triplet(network, sender or "", recipient or "")
            gone = store.db.execute("DELETE FROM greylist_triplets WHERE network = ? AND "
                                    "sender = ? AND recipient = ?",
                                    [key.network, key.sender, key.recipient]).rowcount
            what = f"{key.network} <{key.sender}> -> <{key.recipient}>"
        store.audit(actor, f"greylist: forget {what}")
    return gone
