"""The content checks of the policy chain (the Anti-Virus scan and what
else a SoftPak places from Order.CONTENT on at the data stage), run on mail
fetched from an ISP mailbox as smtpd runs them at the end of DATA: what is
fetched is received mail like any other, and must not pass unscanned.

Where smtpd would answer, a fetch has no one to answer to: a refusal (5xx)
puts the message in the quarantine, a temporary failure (4xx, e.g. the
scanner is down and When the Scanner Fails says so) leaves it at the ISP
for the next session. The checks' headers are added; a check that asks for
the quarantine gets it. The score's thresholds apply and the fields smtpd
writes are written (scoring.mark), the sender's forged ones removed.

Recipients are first split into transactions as smtpd's RCPT stage splits
them (transactions()): a content-order check that defers a recipient there
(the Anti-Spam SoftPak's, for a recipient whose filter record differs from
the first one's) would have the client send it again in a transaction of
its own, so each group here is screened and queued on its own, each by its
own recipients' level and action.

The core's data-stage checks before Order.CONTENT (size, line length, hops,
bare line endings) guard the SMTP dialogue and are left out: what is fetched
was accepted by the ISP, and its size is bounded by the fetch itself."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from firmware.mail import extensions, scoring
from firmware.mail.policy import Context, Order, Policy
from firmware.mail.submit import Submission


class TryLater(Exception):
    """A content check failed for now: the message stays at the ISP."""


@dataclass(frozen=True)
class Screened:
    message: bytes
    quarantine: tuple | None = None     # (kind, reason)
    # What the checks asked to send (a virus notice), not yet queued: it is
    # staged with the message, so a fetch that stops and is taken again
    # sends it once (staging.put).
    notices: tuple = ()


class ContentScreen:
    def __init__(self, ctx):
        self.ctx = ctx
        chain = extensions.policy(ctx.store)
        self.policy = Policy([check for check in chain.for_stage("data")
                              if check.order >= Order.CONTENT])
        self.split = Policy([check for check in chain.for_stage("rcpt")
                             if check.order >= Order.CONTENT])

    def transactions(self, sender: str, recipients: list, peer: str) -> list[list[str]]:
        """RECIPIENTS in the groups smtpd would take in one transaction each:
        one a check defers goes to the next group, as a client retries it.
        A group's first recipient is always taken, so each round takes one."""
        return asyncio.run(self._transactions(sender, list(recipients), peer))

    async def _transactions(self, sender, left, peer):
        groups = []
        while left:
            group, deferred = [], []
            for recipient in left:
                context = Context(settings=self.ctx.settings, client_ip=peer or "0.0.0.0",
                                  sender=sender, recipients=list(group), recipient=recipient)
                if group and await self.split.evaluate("rcpt", context) is not None:
                    deferred.append(recipient)
                else:
                    group.append(recipient)
            groups.append(group)
            left = deferred
        return groups

    def __call__(self, message: bytes, sender: str, recipients: list, peer: str) -> Screened:
        notices = []

        async def hold_notice(submission: Submission) -> str:
            notices.append(submission)
            return ""
        context = Context(settings=self.ctx.settings, client_ip=peer or "0.0.0.0", sender=sender,
                          recipients=list(recipients), message=message, data_size=len(message),
                          submit=hold_notice)
        verdict = asyncio.run(self.policy.evaluate("data", context))
        if verdict is not None and verdict.code >= 500:
            kind = "virus" if verdict.check == "antivirus" else "spam"
            return Screened(message, (kind, verdict.text), tuple(notices))
        if verdict is not None:
            raise TryLater(f"{verdict.check}: {verdict.reply}")
        # The score decides as at smtpd's end of DATA, and the same header
        # fields are written: the sender's own claims to be ours removed.
        # The Anti-Spam SoftPak's level and action (context.spam_policy) count
        # here as they do there.
        settings = self.ctx.settings
        action = scoring.decide(context.score, settings, context.spam_policy)
        if action.kind in (scoring.REJECT, scoring.QUARANTINE):
            context.quarantine("spam", action.reason)
        marked = scoring.mark(message, action, context.symbols, context.auth_results, settings,
                              settings["system.hostname"], context.spam_policy,
                              held=bool(context.quarantine_kind))
        added = "".join(f"{name}: {value}\r\n" for name, value in context.add_headers).encode()
        held = (context.quarantine_kind, context.hold_reason) if context.quarantine_kind else None
        return Screened(added + marked, held, tuple(notices))
