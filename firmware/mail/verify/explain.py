"""The Test box of the Address Verification page: what each check of the
running chain would answer for an address, as a sender from the Internet
and as a recipient, and why. It runs the very checks smtpd runs, on a
context made up for the question, so the page cannot disagree with the
server."""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass

from .. import addresses
from ..headers import safe_text
from ..policy import Context, Policy
from . import recipients

# A documentation address (RFC 5737): a stranger on the Internet.
OUTSIDE_CLIENT = "192.0.2.1"
# The checks asked, and the option that turns each on (None: always on when present).
ASKED = {"spf": "email.spf", "verify_sender_local": "email.verify_sender_local",
         "verify_sender_callout": "email.verify_sender_callout", "verify_recipient": None,
         "mailserver_unaddressable": None}


@dataclass(frozen=True)
class Answer:
    role: str        # "as sender" | "as recipient"
    check: str
    verdict: str     # the SMTP reply it would give, or "accept"
    detail: str      # symbols or results it left


async def _run(check, ctx: Context):
    ctx.stage = check.stage
    try:
        result = check.run(ctx)
        if inspect.isawaitable(result):
            result = await asyncio.wait_for(result, check.budget)
    except asyncio.TimeoutError:
        return f"would defer: the check timed out after {check.budget:g} s"
    except Exception as error:
        return f"would defer: the check failed ({type(error).__name__}: {safe_text(error, 100)})"
    return "accept" if result is None else f"would answer {result.code} {result.enhanced} {result.text}"


def _detail(ctx: Context) -> str:
    found = [f"{check}={result}" for (check, result) in ctx.results]
    found += [f"{a.method}={a.result}" for a in ctx.auth_results]
    found += [f"{s.name}({s.score:g})" for s in ctx.symbols]
    return ", ".join(dict.fromkeys(found))


async def explain(policy: Policy, settings, address: str, resolver,
                  client_ip: str = OUTSIDE_CLIENT) -> list[Answer]:
    if not addresses.is_clean(address) or "@" not in address:
        raise ValueError("enter a full address such as jane@example.com")
    domain = addresses.parse(address).domain
    answers = []
    for role, stage in (("as sender", "mail"), ("as recipient", "rcpt")):
        for check in policy.for_stage(stage):
            if check.name not in ASKED:
                continue
            option = ASKED[check.name]
            if option is not None and not settings[option]:
                continue
            if check.name == "verify_recipient" and not recipients.enabled_sources(settings):
                continue
            ctx = Context(settings=settings, client_ip=client_ip, resolver=resolver,
                          helo=domain or "unknown")
            if stage == "mail":
                ctx.sender = address
            else:
                ctx.sender, ctx.recipient = "tester@example.org", address
            verdict = await _run(check, ctx)
            answers.append(Answer(role, check.name, verdict, _detail(ctx)))
    return answers
