"""The Address Verification checks, each a named check of the policy chain:

  spf                     mail  Enable SPF (and its bypass)
  verify_sender_local     mail  Verify Sender Using Local Domain Exists
  verify_sender_callout   mail  Verify Sender Email Account Exists
  verify_recipient        rcpt  the three recipient sources of Relay mode
  deny_invalid_headers    data  Deny Email with Invalid Headers

Clients that may relay (Trusted Networks, authenticated) are the office's
own: none of these checks judges them. Each counts its results per kind
(spf=softfail, verify_recipient=refuse...) for the page and the dashboard."""

from __future__ import annotations

import asyncio

from firmware import plugins
from firmware.config.types import split_host_port

from .. import addresses, server_type
from ..addresses import comparable_ip, in_networks
from ..headers import safe_text
from ..mx import LookupFailed
from ..policy import Check, Context, Order, reject, tempfail
from ..route import is_local_domain
from . import callout, header_syntax, my_mx, recipients, spf_check
from .cache import VerifyCache

# Scores for the symbols SPF leaves (SpamAssassin's); thresholds are the
# Anti-Spam SoftPak's, so until it is licensed they only inform.
SPF_SCORES = {"pass": -0.001, "softfail": 0.665, "neutral": 0.0, "none": 0.0, "permerror": 0.0}
SPF_BUDGET = 10.0
OWN_MX_BUDGET = 2.0
CALLOUT_BUDGET = 30.0
INLINE_HEADER_BYTES = 16 * 1024



def callout_targets(hosts, settings) -> list:
    """The sender's MX hosts the box may ask: never one inside Trusted
    Networks, the LAN server, the box itself or an address no one can
    serve from, so that a sender's DNS cannot make the box probe the office's
    own network (an MX record is the stranger's to write)."""
    lan = settings["email.mail_server_address"]
    lan_host = split_host_port(lan)[0].lower() if lan else ""
    allowed = []
    for address, port in hosts:
        ip = comparable_ip(address)
        if ip is None or ip.is_unspecified or ip.is_multicast or ip.is_link_local \
                or in_networks(str(ip), settings["email.trusted_networks"]) \
                or str(ip) == lan_host:
            continue
        allowed.append((address, port))
    return allowed


REFUSES_THE_BOX = "its server refuses the box:"


def _note(ctx: Context, symbol: str, detail: str = ""):
    """A passed check leaves a symbol of score 0 in the symbols header, once."""
    if not any(s.name == symbol for s in ctx.symbols):
        ctx.add_symbol(symbol, 0.0, detail)


def _sender_domain(ctx: Context) -> str:
    return addresses.parse(ctx.sender).domain.lower() if ctx.sender else ""


def spf():
    async def check(ctx: Context):
        settings = ctx.settings
        if not settings["email.spf"]:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SPF_BUDGET - 1
        if settings["email.spf_bypass"]:
            if ctx.may_relay:
                ctx.count_result("spf", "bypassed")
                return None
            ours = await my_mx.my_mx_addresses(settings, ctx.resolver, OWN_MX_BUDGET)
            client = comparable_ip(ctx.client_ip)
            if client is not None and client in {comparable_ip(a) for a in ours}:
                ctx.count_result("spf", "bypassed")
                return None
        outcome = await spf_check.check(ctx.client_ip, ctx.sender, ctx.helo, settings,
                                        ctx.resolver, budget=max(1.0, deadline - loop.time()))
        ctx.count_result("spf", outcome.result)
        identity = ctx.sender or f"postmaster@{ctx.helo}"
        ctx.add_auth_result("spf", outcome.result, smtp_mailfrom=safe_text(identity, 200))
        why = safe_text(outcome.explanation, 150)
        if outcome.result == "fail":
            return reject("5.7.23", f"SPF: {outcome.domain or 'the sender domain'} does not "
                                    f"allow {ctx.client_ip} to send its mail ({why})")
        if outcome.result == "temperror":
            return tempfail("4.7.24", f"SPF: temporary DNS error for "
                                      f"{outcome.domain or 'the sender domain'} ({why})", 451)
        ctx.add_symbol(f"SPF_{outcome.result.upper()}", SPF_SCORES.get(outcome.result, 0.0), why)
        return None
    return Check("spf", "mail", check, order=Order.REPUTATION, budget=SPF_BUDGET, asks_dns=True)


def local_sender_exists(store, address: str, settings) -> bool | None:
    """Whether an address at one of our domains exists: the Mail Server
    SoftPak answers where it keeps the mailboxes; elsewhere (Relay) no one
    here can say, and the recipient verification is asked instead."""
    answers = [a for a in plugins.active_plugin_manager(store).hook.gatebox_address_exists(
        store=store, settings=settings, address=address) if a is not None]
    return any(answers) if answers else None


def verify_sender_local(store, cache: VerifyCache):
    async def check(ctx: Context):
        settings = ctx.settings
        domain = _sender_domain(ctx)
        if (not settings["email.verify_sender_local"] or ctx.may_relay or not domain
                or not is_local_domain(domain, settings)):
            return None
        shown = safe_text(ctx.sender)
        relay = server_type.in_effect(settings) == "relay"
        # In Relay mode no SoftPak keeps the mailboxes: spare the hook call.
        exists = None if relay else local_sender_exists(store, ctx.sender, settings)
        if exists is None and relay:
            decision = await recipients.decide(store, cache, settings, ctx.sender)
            exists = {"accept": True, "refuse": False}.get(decision.outcome)
            if decision.outcome == "tempfail":
                ctx.count_result("verify_sender_local", "unknown")
                return tempfail("4.1.7", f"<{shown}>: Sender address rejected: cannot verify "
                                         "it now, try again later")
        if exists is None:
            ctx.count_result("verify_sender_local", "not checked")
            return None
        ctx.count_result("verify_sender_local", "exists" if exists else "refused")
        if exists:
            _note(ctx, "LOCAL_SENDER_EXISTS")
        else:
            return reject("5.7.1", f"<{shown}>: Sender address rejected: not a user of {domain}, "
                                   "and mail from outside may not claim to be one")
        return None
    return Check("verify_sender_local", "mail", check, order=Order.LOCAL, budget=CALLOUT_BUDGET)


async def sender_callout_answer(cache: VerifyCache, settings, resolver, sender: str):
    """(status, reply, cached) for the sender's own mail server."""
    domain = sender.rpartition("@")[2]

    async def ask():
        try:
            hosts = await asyncio.to_thread(callout.sender_mx_hosts, domain, settings, resolver)
        except LookupFailed as error:
            if error.permanent:
                return callout.CalloutAnswer("refused", f"no mail server: {error}")
            return callout.CalloutAnswer("unreachable", str(error))
        allowed = callout_targets(hosts, settings)
        if not allowed:
            return callout.CalloutAnswer("unreachable", f"the mail hosts of {domain} are inside "
                                                        "the office's network; not asked")
        answer = await callout.callout(allowed, sender, helo=settings["system.hostname"],
                                       budget=CALLOUT_BUDGET - 5)
        if callout.refuses_the_box(answer):
            return callout.CalloutAnswer("unreachable", f"{REFUSES_THE_BOX} {answer.reply}")
        return answer
    return await cache.ask("sender", sender, ask)


def verify_sender_callout(cache: VerifyCache):
    async def check(ctx: Context):
        settings = ctx.settings
        domain = _sender_domain(ctx)
        # Our own domains would call ourselves: Verify Sender Using Local Domain Exists does them.
        if (not settings["email.verify_sender_callout"] or ctx.may_relay or not domain
                or is_local_domain(domain, settings) or addresses.literal_ip(domain) is not None
                or not callout.can_ask_about(ctx.sender)):
            return None
        status, reply, cached = await sender_callout_answer(cache, settings, ctx.resolver,
                                                            ctx.sender)
        shown = safe_text(ctx.sender)
        if status == "unreachable" and reply.startswith(REFUSES_THE_BOX):
            # Its server will not talk to us: that says nothing about the sender.
            ctx.count_result("verify_sender_callout", "not checked")
            return None
        ctx.count_result("verify_sender_callout", status)
        if status == "refused":
            return reject("5.1.7", f"<{shown}>: Sender address rejected: its mail server says it "
                                   f"does not exist ({safe_text(reply, 120)})")
        if status == "unreachable":
            return tempfail("4.1.7", f"<{shown}>: Sender address rejected: cannot verify it now "
                                     f"({safe_text(reply, 120)}), try again later")
        _note(ctx, "SENDER_VERIFIED", "remembered" if cached else "asked")
        return None
    return Check("verify_sender_callout", "mail", check, order=Order.REPUTATION + 10,
                 budget=CALLOUT_BUDGET, asks_dns=True)


def recipient_verification_applies(ctx: Context) -> bool:
    settings = ctx.settings
    if ctx.may_relay or server_type.in_effect(settings) != "relay":
        return False
    domain = addresses.parse(ctx.recipient).domain.lower()
    return bool(domain) and is_local_domain(domain, settings) and \
        bool(recipients.enabled_sources(settings))


def verify_recipient(store, cache: VerifyCache):
    async def check(ctx: Context):
        if not recipient_verification_applies(ctx):
            return None
        decision = await recipients.decide(store, cache, ctx.settings, ctx.recipient)
        ctx.count_result("verify_recipient", decision.outcome)
        shown = safe_text(ctx.recipient)
        if decision.outcome == "refuse":
            return reject("5.1.1", f"<{shown}>: Recipient address rejected: User unknown "
                                   "in the internal server's address list")
        if decision.outcome == "tempfail":
            why = "; ".join(a.why for a in decision.answers if a.answer == recipients.CANNOT_TELL)
            return tempfail("4.4.1", f"<{shown}>: Recipient address rejected: cannot verify "
                                     f"it now ({safe_text(why, 150)}), try again later")
        if decision.outcome == "accept":
            _note(ctx, "RECIPIENT_VERIFIED")
        return None
    return Check("verify_recipient", "rcpt", check, order=Order.LOCAL, budget=CALLOUT_BUDGET)


async def deny_invalid_headers(ctx: Context):
    if not ctx.settings["email.deny_invalid_headers"] or ctx.may_relay:
        return None
    # A huge address header takes the parser a while: then in a worker
    # thread. The usual few KiB cost less than handing them to one.
    end = ctx.message.find(b"\r\n\r\n", 0, INLINE_HEADER_BYTES)
    if 0 <= end:
        problem = header_syntax.invalid_header(ctx.message)
    else:
        problem = await asyncio.to_thread(header_syntax.invalid_header, ctx.message)
    ctx.count_result("deny_invalid_headers", "invalid" if problem else "valid")
    if problem:
        return reject("5.6.0", f"Message refused: invalid header: {safe_text(problem, 150)}")
    _note(ctx, "HEADERS_VALID")
    return None


def address_verification_checks(store) -> list[Check]:
    cache = VerifyCache(store)
    return [
        spf(),
        verify_sender_local(store, cache),
        verify_sender_callout(cache),
        verify_recipient(store, cache),
        Check("deny_invalid_headers", "data", deny_invalid_headers, order=Order.SYNTAX + 10),
    ]
