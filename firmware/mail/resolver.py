"""The one DNS resolver of a process: dnspython's asynchronous resolver with
a shared cache, pointed at System > Network's DNS Servers and DNS Port.

MX lookup for delivery, and every check that asks DNS (SPF, DNSBL, PTR,
DKIM, DMARC), go through it. The servers are read from the settings on each
query and the resolver is rebuilt (and its cache emptied, since other servers
may answer differently) when they change, so a settings change needs no
restart. Each query has a time budget; a timeout or a server failure is a
DnsFailure, which the policy chain turns into 451 4.4.3.

Answers, NXDOMAIN and NODATA are remembered by name and type for as long
as dnspython's own cache keeps them (their TTL), in front of it: a message
through every Anti-Spam layer asks the same five or six names as the last
one, and dnspython's way to its cache (a parsed name and a resolution per
query) cost a few per cent of smtpd's CPU.

Callers on an event loop await `resolve`. Threads (the delivery agents run in
worker threads) call `resolve_blocking`, which runs the query on a loop the
resolver owns in its own thread: a blocking caller never holds up the loop
that serves SMTP clients, and never needs one of its own."""

from __future__ import annotations

import asyncio
import threading
import time

import dns.asyncresolver
import dns.exception
import dns.resolver

QUERY_SECONDS = 5.0
CACHE_ENTRIES = 10_000
FALLBACK_NAMESERVER = "127.0.0.1"

NXDOMAIN = dns.resolver.NXDOMAIN
NoAnswer = dns.resolver.NoAnswer


class DnsFailure(Exception):
    """A temporary DNS problem: timeout, SERVFAIL, no server answered."""


class Resolver:
    def __init__(self, cache_entries: int = CACHE_ENTRIES):
        self._cache = dns.resolver.LRUCache(cache_entries)
        self._recent = _Recent(cache_entries)
        self._lock = threading.Lock()
        self._servers = None
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ---- configuration -----------------------------------------------------------
    def _configured(self, settings) -> dns.asyncresolver.Resolver:
        servers = (settings["dns.nameservers"], settings["dns.port"])
        with self._lock:
            if servers != self._servers:
                self._resolver = _build(*servers)
                self._cache.flush()
                # Replaced, not emptied: a query to the old servers that
                # ends later puts its answer where nobody looks.
                self._recent = _Recent(self._recent.entries)
                self._resolver.cache = self._cache
                self._servers = servers
            return self._resolver

    # ---- queries -----------------------------------------------------------------
    async def resolve(self, name: str, rdtype: str, settings, budget: float = QUERY_SECONDS):
        """The answer, or NXDOMAIN / NoAnswer (which are answers), or DnsFailure."""
        resolver = self._configured(settings)
        recent, key = self._recent, (name, rdtype)
        found = recent.get(key)
        if found is not None:
            if isinstance(found, type):
                raise found()        # a fresh one: a raised exception keeps its traceback
            return found
        try:
            answer = await resolver.resolve(name, rdtype, lifetime=budget)
        except (NXDOMAIN, NoAnswer) as negative:
            recent.put(key, type(negative), time.time() + negative_ttl(negative))
            raise
        except dns.exception.Timeout:
            raise DnsFailure(f"DNS lookup of {name}/{rdtype} timed out after {budget:g}s") from None
        except dns.exception.DNSException as error:
            raise DnsFailure(f"DNS lookup of {name}/{rdtype} failed: {error}") from None
        recent.put(key, answer, answer.expiration)
        return answer

    def resolve_blocking(self, name: str, rdtype: str, settings, budget: float = QUERY_SECONDS):
        """`resolve` for threads. Never call it on an event loop's thread."""
        loop = self._own_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            raise RuntimeError("resolve_blocking called on an event loop; await resolve() there")
        future = asyncio.run_coroutine_threadsafe(self.resolve(name, rdtype, settings, budget), loop)
        return future.result()

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever,
                                                name="dns-resolver", daemon=True)
                self._thread.start()
            return self._loop

    def close(self):
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()


class _Recent:
    """(name, type) -> an Answer or a negative answer's exception class, until
    it expires (time.time(), as dnspython's expirations). Bounded: past the
    bound the oldest entry goes. One event loop's thread and the resolver's
    own thread share it; every step is one dictionary operation."""

    def __init__(self, entries: int):
        self.entries = max(1, entries)
        self._found: dict = {}

    def get(self, key):
        held = self._found.get(key)
        if held is None:
            return None
        if held[0] <= time.time():
            self._found.pop(key, None)
            return None
        return held[1]

    def put(self, key, value, expires: float):
        if expires <= time.time():
            return
        while len(self._found) >= self.entries:
            try:
                self._found.pop(next(iter(self._found)), None)
            except (StopIteration, RuntimeError):     # emptied or changed meanwhile
                break
        self._found[key] = (expires, value)


def negative_ttl(negative: dns.exception.DNSException) -> float:
    """How long dnspython's own cache keeps the same negative answer: the
    response's minimum TTL as dnspython works it out (RFC 2308's SOA TTL
    when the response has one); 0 (not remembered) without a response."""
    if isinstance(negative, NXDOMAIN):
        responses = list((negative.kwargs.get("responses") or {}).values())
    else:
        responses = [negative.kwargs["response"]] if negative.kwargs.get("response") else []
    try:
        return float(min(r.resolve_chaining().minimum_ttl for r in responses)) if responses else 0.0
    except dns.exception.DNSException:
        return 0.0


def _build(nameservers: str, port: int) -> dns.asyncresolver.Resolver:
    servers = [s for s in nameservers.split(",") if s]
    if servers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = servers
    else:
        try:
            resolver = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            # No /etc/resolv.conf (a box before its network is set up): a local
            # resolver is the only sensible guess; lookups fail as DnsFailure.
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [FALLBACK_NAMESERVER]
    resolver.port = port
    return resolver


_shared: Resolver | None = None
_shared_lock = threading.Lock()


def shared() -> Resolver:
    """The process's resolver, so that every user shares one cache."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Resolver()
        return _shared
