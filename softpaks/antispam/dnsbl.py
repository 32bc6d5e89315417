"""DNS RBL filters (antispam.dnsbl): each zone is asked about the client
(its reversed IPv4 octets or IPv6 nibbles under the zone, an A record) at
RCPT, so the log shows the sender and recipient, as Postfix does. All zones
are asked at once, each within its own time limit.

A zone decides only while it is healthy. RFC 5782 says every zone lists
127.0.0.2 and never 127.0.0.1; each zone is tested so every hour, and a zone
that fails (gone, misspelt, or answering for every address: "listing the
world", which would refuse all mail) stops deciding until it passes again.
A zone no test has passed yet does not decide either: a new zone is tested
the moment mail first asks it, and that first answer waits a few seconds
for the test. An unhealthy zone is tested again after ten minutes, not an
hour, so a repaired list comes back soon.

A zone that does not answer, or answers late, does not decide this time:
mail is never deferred because a blocklist is broken. The answers that mean
"you may not use this list" (127.255.255.252-255, Spamhaus's open-resolver
and over-quota replies, and anything outside 127.0.0.0/8) never count as
listed; they leave a warning on the zone for the Access page and the
dashboard.

The health and the warnings live in table dnsbl_zones, so the page, the
dashboard and `Test Now` in another process see what smtpd found."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from dataclasses import dataclass

from firmware.config import transaction
from firmware.mail.addresses import comparable_ip
from firmware.mail.headers import safe_text
from firmware.mail.policy import Check, Context, Order, reject
from firmware.mail.resolver import NXDOMAIN, DnsFailure, NoAnswer

from .recent import Recent
from .settings import DNSBL, parse_codes, parse_zone_line

CHECK_NAME = "dnsbl"
QUERY_SECONDS = 4.0
CHECK_SECONDS = 10.0            # above a query's limit: the zones are asked in parallel
FIRST_TEST_WAIT = 4.0           # how long mail waits for a new zone's first health test
HEALTH_SECONDS = 3600.0
RETEST_UNHEALTHY_SECONDS = 600.0
TABLE_SECONDS = 15.0            # how stale this process's view of others' tests may get
WARNING_REWRITE_SECONDS = 600.0

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
REFUSALS = (ipaddress.IPv4Address("127.255.255.252"), ipaddress.IPv4Address("127.255.255.255"))
LISTED_TEST = "127.0.0.2"
UNLISTED_TEST = "127.0.0.1"

# Outcomes of one lookup.
LISTED, CLEAN, REFUSED, ERROR = "listed", "clean", "refused", "error"

log = logging.getLogger("gatebox.antispam")


@dataclass(frozen=True)
class Zone:
    name: str
    codes: str
    ranges: tuple

    def counts(self, answer) -> bool:
        return any(low <= answer <= high for low, high in self.ranges)


@dataclass(frozen=True)
class Lookup:
    zone: str
    outcome: str            # listed | clean | refused | error
    answers: tuple = ()     # the A records, ip_address objects
    detail: str = ""


@dataclass(frozen=True)
class ZoneHealth:
    zone: str
    healthy: bool | None    # None: never tested
    checked: float | None
    detail: str = ""
    warning: str = ""
    warned: float | None = None


def zones(settings) -> list[Zone]:
    """The configured zones, in their order."""
    return list(_zones(str(settings[DNSBL] or "")))


@functools.lru_cache(maxsize=8)
def _zones(raw: str) -> tuple:
    """Parsed once per value of the setting, not for every recipient."""
    found = []
    for line in raw.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            name, codes = parse_zone_line(line)
            found.append(Zone(name, codes, tuple(parse_codes(codes))))
        except ValueError as error:
            # The setting's type refuses such lines; one written around it is skipped.
            log.warning("warning: dnsbl: ignoring zone line %r: %s", line[:80], error)
    return tuple(found)



def query_name(ip: str, zone: str) -> str:
    """'192.0.2.7', 'zone' -> '7.2.0.192.zone'; IPv6 as its 32 reversed nibbles."""
    address = comparable_ip(ip)
    if address is None:
        raise ValueError(f"{ip!r} is not an IP address")
    # reverse_pointer ends in in-addr.arpa or ip6.arpa: the zone takes their place.
    return address.reverse_pointer.rsplit(".", 2)[0] + "." + zone


def means_refusal(answer) -> bool:
    """An answer by which the list says it will not serve this box."""
    return answer.version != 4 or answer not in LOOPBACK or REFUSALS[0] <= answer <= REFUSALS[1]


def refusal_text(zone: str, answers) -> str:
    shown = ", ".join(str(a) for a in answers)
    return (f"{zone} answered {shown}, which means it refuses to serve this box (a public or "
            f"shared DNS server, or over the list's free quota); its answers are ignored. "
            f"Use a DNS server of your own, or the list's paid service")


async def lookup(ip: str, zone: Zone, settings, resolver, budget: float = QUERY_SECONDS) -> Lookup:
    name = query_name(ip, zone.name)
    try:
        answer = await asyncio.wait_for(resolver.resolve(name, "A", settings, budget), budget + 1)
    except (NXDOMAIN, NoAnswer):
        return Lookup(zone.name, CLEAN)
    except DnsFailure as error:
        return Lookup(zone.name, ERROR, detail=str(error))
    except asyncio.TimeoutError:
        return Lookup(zone.name, ERROR, detail=f"no answer for {name} within {budget:g}s")
    answers = tuple(ipaddress.ip_address(record.address) for record in answer)
    refused = [a for a in answers if means_refusal(a)]
    if refused:
        return Lookup(zone.name, REFUSED, answers, refusal_text(zone.name, refused))
    if any(zone.counts(a) for a in answers):
        return Lookup(zone.name, LISTED, answers)
    return Lookup(zone.name, CLEAN, answers)


# ---- health (RFC 5782) ---------------------------------------------------------------------
@dataclass(frozen=True)
class TestResult:
    zone: str
    healthy: bool
    detail: str
    warning: str = ""


async def health_test(zone: Zone, settings, resolver) -> TestResult:
    """127.0.0.2 must be listed (any answer in 127.0.0.0/8, whatever the zone's
    codes) and 127.0.0.1 must not."""
    listed, unlisted = await asyncio.gather(lookup(LISTED_TEST, zone, settings, resolver),
                                            lookup(UNLISTED_TEST, zone, settings, resolver))
    for found in (listed, unlisted):
        if found.outcome == REFUSED:
            return TestResult(zone.name, False, found.detail, warning=found.detail)
    for found in (listed, unlisted):
        if found.outcome == ERROR:
            return TestResult(zone.name, False, f"could not be tested: {found.detail}")
    if not listed.answers:
        return TestResult(zone.name, False,
                          f"does not list the test address {LISTED_TEST} (RFC 5782): the zone is "
                          f"misspelt, gone, or not answering this box")
    if unlisted.answers:
        shown = ", ".join(str(a) for a in unlisted.answers)
        return TestResult(zone.name, False,
                          f"lists {UNLISTED_TEST} ({shown}), which no working zone does (RFC 5782): "
                          f"it answers for every address and would refuse all mail")
    return TestResult(zone.name, True, f"lists {LISTED_TEST} and not {UNLISTED_TEST} (RFC 5782)")


def record_health(store, result: TestResult, now: float) -> ZoneHealth:
    """Writes a test's result; a passed test clears the zone's warning."""
    with transaction(store.db):
        store.db.execute(
            "INSERT INTO dnsbl_zones(zone, checked, healthy, detail) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(zone) DO UPDATE SET checked = excluded.checked, "
            "healthy = excluded.healthy, detail = excluded.detail",
            [result.zone, now, int(result.healthy), result.detail])
        if result.warning:
            store.db.execute("UPDATE dnsbl_zones SET warning = ?, warned = ? WHERE zone = ?",
                             [result.warning, now, result.zone])
        elif result.healthy:
            store.db.execute("UPDATE dnsbl_zones SET warning = '', warned = NULL WHERE zone = ?",
                             [result.zone])
    log.log(logging.INFO if result.healthy else logging.WARNING, "%sdnsbl: zone %s %s: %s",
            "" if result.healthy else "warning: ", result.zone,
            "is healthy" if result.healthy else "is broken and does not decide", result.detail)
    return _health_rows(store, [result.zone])[result.zone]


def record_warning(store, zone: str, text: str, now: float):
    with transaction(store.db):
        store.db.execute(
            "INSERT INTO dnsbl_zones(zone, warning, warned) VALUES (?, ?, ?) "
            "ON CONFLICT(zone) DO UPDATE SET warning = excluded.warning, warned = excluded.warned",
            [zone, text, now])


def _number(value):
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _health_rows(store, names=None) -> dict:
    rows = store.db.query("SELECT zone, checked, healthy, detail, warning, warned FROM dnsbl_zones")
    found = {}
    for row in rows:
        if names is not None and row["zone"] not in names:
            continue
        healthy = row["healthy"]
        found[row["zone"]] = ZoneHealth(
            row["zone"], None if healthy is None else bool(healthy), _number(row["checked"]),
            str(row["detail"] or ""), str(row["warning"] or ""), _number(row["warned"]))
    return found


async def test_zones(store, settings, resolver, clock=time.time) -> list[ZoneHealth]:
    """Test Now: every configured zone tested at once, the results recorded."""
    configured = zones(settings)
    results = await asyncio.gather(*(health_test(zone, settings, resolver) for zone in configured))
    return [record_health(store, result, clock()) for result in results]


def zone_status(store) -> list[ZoneHealth]:
    """The configured zones for the Access page, in their order; a zone never
    tested has healthy None and the detail says so."""
    recorded = _health_rows(store)
    status = []
    for zone in zones({DNSBL: store.get(DNSBL)}):
        status.append(recorded.get(zone.name) or
                      ZoneHealth(zone.name, None, None, "not tested yet: it is tested when mail "
                                                        "first asks it, or with Test Now"))
    return status


def needs_attention(store) -> list[ZoneHealth]:
    """The configured zones the dashboard should mention: broken or warned."""
    return [z for z in zone_status(store) if z.healthy is False or z.warning]


# ---- the check -----------------------------------------------------------------------------
class ZoneMonitor:
    """One smtpd's view of the zones' health, and the health tests it runs.
    At most one test per zone is under way; the tasks are kept here so they
    are not collected while they run."""

    def __init__(self, store, clock=time.time, monotonic=time.monotonic):
        self.store = store
        self.clock = clock
        self.monotonic = monotonic
        self.recent = Recent(clock=monotonic)
        self._health: dict = {}
        self._read_at: float | None = None
        self._testing: dict = {}
        self._warned: dict = {}

    def health(self, zone: str) -> ZoneHealth | None:
        if self._read_at is None or self.monotonic() - self._read_at >= TABLE_SECONDS:
            self._health = _health_rows(self.store)
            self._read_at = self.monotonic()
        return self._health.get(zone)

    def _due(self, health: ZoneHealth | None) -> bool:
        if health is None or health.checked is None:
            return True
        age = self.clock() - health.checked
        return age < 0 or age >= (HEALTH_SECONDS if health.healthy else RETEST_UNHEALTHY_SECONDS)

    def under_test(self) -> set:
        """The zones whose health test is running now."""
        return {name for name, task in self._testing.items() if not task.done()}

    def test_if_due(self, zone: Zone, settings, resolver) -> asyncio.Task | None:
        """The zone's health test under way, started now when one is due."""
        task = self._testing.get(zone.name)
        if task is not None and not task.done():
            return task
        if not self._due(self.health(zone.name)):
            return None
        task = asyncio.create_task(self._test(zone, settings, resolver))
        self._testing[zone.name] = task
        task.add_done_callback(lambda done, name=zone.name: self._finished(name, done))
        return task

    async def _test(self, zone: Zone, settings, resolver) -> ZoneHealth:
        result = await health_test(zone, settings, resolver)
        health = record_health(self.store, result, self.clock())
        self._health[zone.name] = health
        return health

    def _finished(self, name: str, task: asyncio.Task):
        if self._testing.get(name) is task:
            del self._testing[name]
        if not task.cancelled() and task.exception() is not None:
            log.warning("warning: dnsbl: health test of %s failed: %s", name, task.exception())

    async def _lookup(self, ip: str, zone: Zone, settings, resolver) -> Lookup:
        key = (ip, zone.name, zone.codes)
        found = self.recent.get(key)
        if found is None:
            found = await lookup(ip, zone, settings, resolver)
            self.recent.put(key, found)
        return found

    async def judge(self, ip: str, zone: Zone, settings, resolver) -> Lookup | None:
        """The zone's answer about ip, or None when the zone does not decide now."""
        task = self.test_if_due(zone, settings, resolver)
        health = self.health(zone.name)
        if health is None or health.healthy is None:
            if task is None:
                return None
            # Asked alongside the test; the test is never cancelled by this wait.
            found, _ = await asyncio.gather(self._lookup(ip, zone, settings, resolver),
                                            asyncio.wait({task}, timeout=FIRST_TEST_WAIT))
            health = self._health.get(zone.name)
            if health is None or not health.healthy:
                return None
        elif not health.healthy:
            return None
        else:
            found = await self._lookup(ip, zone, settings, resolver)
        if found.outcome == REFUSED:
            self._warn(zone.name, found.detail)
        return found

    def _warn(self, zone: str, text: str):
        now = self.monotonic()
        said = self._warned.get(zone)
        if said is not None and said[1] == text and now - said[0] < WARNING_REWRITE_SECONDS:
            return
        self._warned[zone] = (now, text)
        log.warning("warning: dnsbl: %s", text)
        record_warning(self.store, zone, text, self.clock())


def dnsbl_check(store, monitor: ZoneMonitor | None = None) -> Check:
    monitor = monitor or ZoneMonitor(store)

    async def check(ctx: Context):
        if ctx.may_relay or ctx.whitelisted:
            return None
        configured = zones(ctx.settings)
        if not configured or ctx.resolver is None or comparable_ip(ctx.client_ip) is None:
            return None
        ip = str(comparable_ip(ctx.client_ip))
        found = await asyncio.gather(*(monitor.judge(ip, zone, ctx.settings, ctx.resolver)
                                       for zone in configured))
        for failed in (f for f in found if f is not None and f.outcome == ERROR):
            log.warning("warning: dnsbl: %s did not answer about [%s]; it does not decide this "
                        "time: %s", failed.zone, ip, failed.detail)
        listed = next((f for f in found if f is not None and f.outcome == LISTED), None)
        if listed is None:
            ctx.count_result(CHECK_NAME, "passed")
            if any(f is not None and f.outcome == ERROR for f in found):
                ctx.count_result(CHECK_NAME, "error")
            return None
        ctx.count_result(CHECK_NAME, "rejected")
        log.info("dnsbl: client [%s] listed in %s (%s) from=<%s> to=<%s>", ip, listed.zone,
                 ", ".join(str(a) for a in listed.answers), safe_text(ctx.sender, 200),
                 safe_text(ctx.recipient, 200))
        return reject("5.7.1", f"Service unavailable; client [{ip}] blocked using {listed.zone}",
                      554)

    # A check that overran skips: a slow list never defers mail.
    return Check(CHECK_NAME, "rcpt", check, order=Order.REPUTATION + 10, on_error="skip",
                 budget=CHECK_SECONDS, asks_dns=True)


def policy_checks(store) -> list:
    return [dnsbl_check(store)]
