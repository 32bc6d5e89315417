"""Mirrored: each user has a mailbox of their own at the ISP, and the box
fetches each one into that user's local mailbox. The envelope recipient is
the user whose ISP mailbox held the message, whatever its To or Cc say, so
aliases and distribution lists play no part in mail fetched from the
Internet (the manual: in this mode they apply only to internal and outgoing
mail). A user's forwarder still applies: it is the user's own choice."""

from __future__ import annotations

import logging

from firmware.mail import server_type
from firmware.mail.headers import safe_text

from .. import groups
from . import AccountResult, RetrievalContext, isp_accounts
from .fetch import fetch_account, session_limit

log = logging.getLogger("gatebox.retrieval")


def run(ctx: RetrievalContext) -> list[AccountResult]:
    """Fetches every user's ISP mailbox; one failing never stops the others."""
    if server_type.in_effect(ctx.settings) != "mirrored":
        return []
    try:
        accounts = isp_accounts.mirrored_accounts(ctx.store, ctx.settings)
    except isp_accounts.AccountInputError as error:
        return [isp_accounts.not_fetched(ctx, "mirrored", str(error))]
    domain = ctx.settings["email.domain"]
    limit = session_limit(ctx.settings)
    return [fetch_into(ctx, account, user, domain, limit) for user, account in accounts]


def fetch_into(ctx: RetrievalContext, account, user: str, domain: str, limit) -> AccountResult:
    """Fetches ACCOUNT into USER's mailbox, or says why not. Shared with Remote POP."""
    if not groups.has_email(ctx.store, user):
        # Fetching would only bounce the mail: it stays where it is.
        return isp_accounts.not_fetched(ctx, account.name, f"user {user} has no Email permission "
                                        "(Users & Groups > Groups) or no longer exists; the mail "
                                        "is left on the server")
    address = f"{user}@{domain}"
    try:
        return fetch_account(ctx, account, lambda message: [address], limit)
    except Exception as error:   # isolation: one account's surprise never stops the rest
        log.exception("%s: retrieval failed", account.name)
        return isp_accounts.not_fetched(ctx, account.name,
                                        safe_text(f"{type(error).__name__}: {error}", 300))
