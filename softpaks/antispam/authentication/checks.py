"""The data-stage check `dkim_dmarc`: DKIM signatures, the ARC chain and
the From domain's DMARC policy, for inbound mail (not from clients that may
relay, not whitelisted).

Every key and policy record is asked for on the event loop through the
box's resolver; dkimpy then verifies in a worker thread from what was
fetched. Each finding goes into Authentication-Results and a symbol:

  DKIM_VALID -0.1       a signature passed
  DKIM_INVALID 1.0      signed, and no signature passed (fail or permerror)
  DKIM_TEMPERROR 0      a key could not be fetched, none passed
  DKIM_NONE 0           unsigned
  ARC_PASS / ARC_FAIL / ARC_TEMPERROR 0
  DMARC_PASS -0.1, DMARC_NONE 0 (no policy), DMARC_TEMPERROR 0,
  DMARC_PERMERROR 1.0 (not exactly one From address),
  DMARC_FAIL 1.0 (p=none, or pct left the message out of a stricter policy),
  DMARC_QUARANTINE 3.0, DMARC_REJECT 5.0 (the policy the message gets),
  DMARC_FAIL_FORWARDER 1.0 (a trusted forwarder's failure: scored only).

A failing message gets its policy when Enforce DMARC Policies is on:
p=reject is refused at DATA with 550 5.7.1, p=quarantine is held in the
spam quarantine. DNS problems are temperror results, never a refusal; a
message too large to verify, or any message while DKIM verification is
off, is never refused or held for its DMARC policy (it might have passed
through a DKIM signature)."""

from __future__ import annotations

import asyncio
import logging

from firmware.mail import message_data
from firmware.mail.headers import safe_text
from firmware.mail.policy import Check, Context, Order, reject

from . import arc, dkim_verify, dmarc, dns_txt
from .forwarders import Matcher

CHECK_NAME = "dkim_dmarc"
DKIM_VERIFY = "antispam.dkim_verify"
DMARC_ENFORCE = "antispam.dmarc_enforce"
ARC_VERIFY = "antispam.arc_verify"
BUDGET = 20.0

DMARC_SCORES = {"reject": ("DMARC_REJECT", 5.0), "quarantine": ("DMARC_QUARANTINE", 3.0),
                "none": ("DMARC_FAIL", 1.0)}

log = logging.getLogger("gatebox.antispam")


def _spf(ctx: Context) -> tuple[str, str]:
    """The SPF check's result and the domain it was about (the MAIL FROM
    domain, or the HELO name for a null sender)."""
    for entry in reversed(ctx.auth_results):
        if entry.method == "spf":
            identity = dict(entry.properties).get("smtp.mailfrom", "")
            return entry.result, identity.rpartition("@")[2].lower().rstrip(".")
    return "none", ""


class AuthenticationCheck:
    def __init__(self, store):
        self.forwarders = Matcher(store)

    async def __call__(self, ctx: Context):
        if ctx.may_relay or ctx.whitelisted or not ctx.message or ctx.resolver is None:
            return None
        settings = ctx.settings
        do_dkim, do_arc, enforce = settings[DKIM_VERIFY], settings[ARC_VERIFY], \
            settings[DMARC_ENFORCE]
        message = ctx.message
        sigs = dkim_verify.signatures(message) if do_dkim else []
        arc_names = arc.key_names(message) if do_arc else []
        names = dkim_verify.key_names(sigs) + (arc_names or [])
        domain, from_problem = dmarc.author_domain(message)
        fetched, (record, dmarc_failure) = await self._lookups(ctx, names, domain)
        if sigs or (do_arc and arc.present(message)):
            # The body hashes cover every octet: a large message is read
            # back whole from its file for them (message_data.whole).
            async with message_data.whole(message, ctx.message_file, len(message)) as full:
                results, arc_outcome = await asyncio.to_thread(
                    self._verify, full, sigs, arc_names, fetched, do_arc)
                del full
        else:
            # Nothing to verify: no hop to a worker thread for most mail.
            results, arc_outcome = [], ("none", "not ARC signed")
        passes = self._record_dkim(ctx, sigs, results, do_dkim)
        if do_arc:
            self._record_arc(ctx, *arc_outcome)
        verified = not any(r.result == "policy" for r in results)
        key_trouble = next((r.reason or "a signing key could not be fetched"
                            for r in results if r.result == "temperror"), "")
        return await self._dmarc(ctx, domain, from_problem, record, dmarc_failure, passes,
                                 arc_outcome[0], enforce and do_dkim and verified, key_trouble)

    @staticmethod
    async def _lookups(ctx: Context, names, domain: str):
        """(the keys fetched, (the DMARC record, its failure)), asked at once.
        Most mail is unsigned: then the policy alone, without the tasks of a gather."""
        resolver, settings = ctx.resolver, ctx.settings
        if not domain:
            return await dns_txt.fetch_all(resolver, settings, names), (None, "")
        if not names:
            return {}, await dmarc.discover(resolver, settings, domain)
        return await asyncio.gather(dns_txt.fetch_all(resolver, settings, names),
                                    dmarc.discover(resolver, settings, domain))

    @staticmethod
    def _verify(message, sigs, arc_names, fetched, do_arc):
        results = dkim_verify.verify(message, sigs, fetched)
        outcome = arc.verify(message, arc_names, fetched) if do_arc else ("none", "")
        return results, outcome

    @staticmethod
    def _record_dkim(ctx: Context, sigs, results, do_dkim) -> list[str]:
        if not do_dkim:
            return []
        if not sigs:
            ctx.add_auth_result("dkim", "none")
            ctx.add_symbol("DKIM_NONE", 0.0, "the message is not DKIM signed")
            ctx.count_result("dkim", "none")
            return []
        for found in results:
            props = {}
            if found.signature.domain:
                props = {"header_d": found.signature.domain, "header_s": found.signature.selector,
                         "header_b": found.signature.b}
            ctx.add_auth_result("dkim", found.result, **props)
            ctx.count_result("dkim", found.result)
        passes = [r.signature.domain for r in results if r.result == "pass"]
        if passes:
            ctx.add_symbol("DKIM_VALID", -0.1, "valid signature of " + ", ".join(passes))
        elif any(r.result in ("fail", "permerror") for r in results):
            bad = next(r for r in results if r.result in ("fail", "permerror"))
            ctx.add_symbol("DKIM_INVALID", 1.0, f"{bad.signature.domain or 'signature'}: "
                                                f"{safe_text(bad.reason, 100)}")
        elif any(r.result == "temperror" for r in results):
            ctx.add_symbol("DKIM_TEMPERROR", 0.0, "a signing key could not be fetched")
        return passes

    @staticmethod
    def _record_arc(ctx: Context, result: str, reason: str):
        ctx.add_auth_result("arc", result)
        if result != "none":
            ctx.add_symbol(f"ARC_{result.upper()}", 0.0, safe_text(reason, 100))
            ctx.count_result("arc", result)

    async def _dmarc(self, ctx: Context, domain, from_problem, record, failure, passes,
                     arc_result, enforce, key_trouble=""):
        if not domain:
            ctx.add_auth_result("dmarc", "permerror")
            ctx.add_symbol("DMARC_PERMERROR", 1.0, safe_text(from_problem, 100))
            ctx.count_result("dmarc", "permerror")
            return None
        outcome = None
        if not failure:
            outcome = dmarc.evaluate(domain, record, passes, _spf(ctx),
                                     dmarc.sample_key(ctx.message))
        if outcome is not None and outcome.result == "fail" and key_trouble:
            # A key that could not be fetched might have given an aligned
            # pass: the DMARC result is temporary too, never a refusal.
            failure = key_trouble
        if failure:
            ctx.add_auth_result("dmarc", "temperror", header_from=domain)
            ctx.add_symbol("DMARC_TEMPERROR", 0.0, safe_text(failure, 100))
            ctx.count_result("dmarc", "temperror")
            return None
        props = {"header_from": domain}
        if outcome.record is not None:
            props = {"policy_dmarc": outcome.published, **props}
        ctx.add_auth_result("dmarc", outcome.result, **props)
        ctx.count_result("dmarc", outcome.result)
        if outcome.result == "none":
            ctx.add_symbol("DMARC_NONE", 0.0, outcome.reason)
            return None
        if outcome.result == "pass":
            ctx.add_symbol("DMARC_PASS", -0.1, f"aligned by {outcome.aligned_by}")
            return None
        forwarder = await self.forwarders.match(ctx)
        if forwarder is not None:
            note = " (ARC chain passes)" if arc_result == "pass" else ""
            ctx.add_symbol("DMARC_FAIL_FORWARDER", 1.0 if arc_result != "pass" else 0.0,
                           f"{domain} p={outcome.published} from trusted forwarder "
                           f"{forwarder}{note}")
            ctx.count_result("dmarc", "forwarder")
            return None
        name, score = DMARC_SCORES[outcome.applied]
        ctx.add_symbol(name, score, f"{domain} p={outcome.published}: {outcome.reason}")
        if not enforce:
            return None
        if outcome.applied == "reject":
            ctx.count_result(CHECK_NAME, "rejected")
            return reject("5.7.1", f"Message refused: DMARC policy of {domain} is reject "
                                   f"and the message is not aligned")
        if outcome.applied == "quarantine":
            ctx.count_result(CHECK_NAME, "quarantined")
            ctx.quarantine("spam", f"DMARC policy quarantine for {domain}")
        return None


def policy_checks(store) -> list[Check]:
    return [Check(CHECK_NAME, "data", AuthenticationCheck(store), order=Order.CONTENT + 30,
                  on_error="skip", budget=BUDGET, asks_dns=True)]
