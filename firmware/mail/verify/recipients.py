"""Relay mode: does the internal server have this address? Three sources
may answer, each turned on by its own option, and a recipient passes when
any enabled source knows it (the manual lets them be combined):

  smtp    a callout to the Mail Server Address at RCPT time, cached
  ldap    the address list last read from the LDAP server
  manual  Email Addresses on Internal Server (*@domain allowed)

A source answers KNOWN, UNKNOWN (it says the address does not exist),
CANNOT_TELL (it could not be asked: the LAN server is down and nothing is
cached, the LDAP list was never read) or NOT_DECIDING (the LAN server
accepts any address, a catch-all, so its yes means nothing). Nobody knowing
the address and some source unable to tell is a temporary refusal, so the
sender retries and the box never accepts mail it would later bounce."""

from __future__ import annotations

import time
from dataclasses import dataclass

from firmware.config.types import split_host_port

from . import callout, ldap_sync
from .cache import VerifyCache

KNOWN, UNKNOWN, CANNOT_TELL, NOT_DECIDING = "known", "unknown", "cannot tell", "not deciding"
SMTP_PORT = 25
# The probe and the callout each, well within the check's 30 s together.
PROBE_BUDGET = 8.0
CALLOUT_BUDGET = 8.0
# A LAN server that did not answer is not asked again for this long: each
# RCPT meanwhile is deferred at once instead of waiting out a timeout.
UNREACHABLE_SECONDS = 60.0
_unreachable: dict = {}   # "host:port" -> monotonic time until which it counts as down



@dataclass(frozen=True)
class SourceAnswer:
    source: str      # smtp | ldap | manual
    answer: str      # KNOWN | UNKNOWN | CANNOT_TELL | NOT_DECIDING
    why: str


@dataclass(frozen=True)
class Decision:
    outcome: str     # accept | refuse | tempfail | none (no source enabled or deciding)
    answers: tuple

    def explain(self) -> str:
        return "; ".join(f"{a.source}: {a.answer} ({a.why})" for a in self.answers)


def enabled_sources(settings) -> list[str]:
    """Cheapest first: a list in hand, then one read from LDAP, then a callout."""
    return [name for name, key in (("manual", "email.internal_addresses"),
                                   ("ldap", "email.verify_recipient_ldap"),
                                   ("smtp", "email.verify_recipient_smtp"))
            if settings[key]]


def in_manual_list(address: str, patterns: str) -> bool:
    address = address.lower()
    domain = address.rpartition("@")[2]
    wanted = {line.strip() for line in patterns.splitlines() if line.strip()}
    return address in wanted or f"*@{domain}" in wanted


def manual_answer(address: str, settings) -> SourceAnswer:
    if in_manual_list(address, settings["email.internal_addresses"]):
        return SourceAnswer("manual", KNOWN, "in Email Addresses on Internal Server")
    return SourceAnswer("manual", UNKNOWN, "not in Email Addresses on Internal Server")


def ldap_answer(store, address: str) -> SourceAnswer:
    knows = ldap_sync.knows(store, address)
    if knows is None:
        return SourceAnswer("ldap", CANNOT_TELL, "the LDAP address list has never been read")
    if knows:
        return SourceAnswer("ldap", KNOWN, "in the LDAP address list")
    return SourceAnswer("ldap", UNKNOWN, "not in the LDAP address list")


def lan_server(settings) -> tuple[str, int] | None:
    value = settings["email.mail_server_address"]
    if not value:
        return None
    return split_host_port(value, SMTP_PORT)


def _forget_unreachable():
    now = time.monotonic()
    for where in [w for w, until in _unreachable.items() if until <= now]:
        del _unreachable[where]


def _meaningful(answer: callout.CalloutAnswer) -> callout.CalloutAnswer:
    """A server that refuses the box itself (5.7.x) has said nothing about
    the address: treated as not reached, so it is neither cached nor taken
    for "user unknown"."""
    if callout.refuses_the_box(answer):
        return callout.CalloutAnswer("unreachable", f"refuses the box: {answer.reply}",
                                     answer.host)
    return answer


async def smtp_answer(cache: VerifyCache, settings, address: str) -> SourceAnswer:
    server = lan_server(settings)
    if server is None:
        return SourceAnswer("smtp", CANNOT_TELL, "no Mail Server Address is set")
    host, port = server
    where = f"{host}:{port}"
    if not callout.can_ask_about(address):
        # Not "not deciding": mail the LAN server may refuse later must not be accepted.
        return SourceAnswer("smtp", CANNOT_TELL, "a callout cannot ask about a non-ASCII address")
    helo = settings["system.hostname"]
    domain = address.rpartition("@")[2].lower()
    probe_key, key = f"{where}/{domain}", f"{where}/{address}"
    catch_all, _ = cache.get("catchall", probe_key)
    if catch_all is not None and catch_all.status == "accepted":
        return SourceAnswer("smtp", NOT_DECIDING,
                            f"{where} accepts any address at {domain} (a catch-all)")
    known, _ = cache.get("recipient", key)
    if known is None:
        _forget_unreachable()
        if where in _unreachable:
            return SourceAnswer("smtp", CANNOT_TELL, f"{where} could not be reached a moment ago")
        if catch_all is None:
            # Once per server and domain: does it take any address at all?
            async def probe():
                return _meaningful(await callout.accepts_anything(
                    (host, port), domain, helo=helo, budget=PROBE_BUDGET))
            status, reply, _ = await cache.ask("catchall", probe_key, probe)
            if status == "unreachable":
                _unreachable[where] = time.monotonic() + UNREACHABLE_SECONDS
                return SourceAnswer("smtp", CANNOT_TELL, f"{where} cannot be reached: {reply}")
            if status == "accepted":
                return SourceAnswer("smtp", NOT_DECIDING,
                                    f"{where} accepts any address at {domain} (a catch-all)")

    async def ask():
        return _meaningful(await callout.callout([(host, port)], address, helo=helo,
                                                 budget=CALLOUT_BUDGET, per_host=CALLOUT_BUDGET))
    status, reply, cached = await cache.ask("recipient", key, ask)
    source = "remembered answer of" if cached else "answer of"
    if status == "accepted":
        return SourceAnswer("smtp", KNOWN, f"{source} {where}: {reply}")
    if status == "refused":
        return SourceAnswer("smtp", UNKNOWN, f"{source} {where}: {reply}")
    _unreachable[where] = time.monotonic() + UNREACHABLE_SECONDS
    return SourceAnswer("smtp", CANNOT_TELL, f"{where} cannot be reached: {reply}")


async def decide(store, cache: VerifyCache, settings, address: str) -> Decision:
    answers = []
    for source in enabled_sources(settings):
        if source == "manual":
            answers.append(manual_answer(address, settings))
        elif source == "ldap":
            answers.append(ldap_answer(store, address))
        else:
            answers.append(await smtp_answer(cache, settings, address))
        if answers[-1].answer == KNOWN:
            break   # one source that knows it is enough; ask no server more
    found = {a.answer for a in answers}
    if KNOWN in found:
        outcome = "accept"
    elif CANNOT_TELL in found:
        outcome = "tempfail"
    elif UNKNOWN in found:
        outcome = "refuse"
    else:
        outcome = "none"
    return Decision(outcome, tuple(answers))
