"""Remote POP (ISMail): further POP3/IMAP mailboxes anywhere, each fetched
into one local recipient's mailbox, in every server type that keeps
mailboxes on the box (Stand-Alone included). It covers users who keep an old
ISP mailbox. The recipient is the account's, never read from the message,
so aliases and lists do not apply to it either."""

from __future__ import annotations

from firmware.mail import server_type

from . import AccountResult, RetrievalContext, isp_accounts
from .mirrored import fetch_into


def run(ctx: RetrievalContext) -> list[AccountResult]:
    if not server_type.keeps_mailboxes(ctx.settings):
        return []
    domain = ctx.settings["email.domain"]
    # Maximum messages to retrieve per session is the ISP mailbox's (Multi-drop, Mirrored).
    return [fetch_into(ctx, account, recipient, domain, None)
            for recipient, account in isp_accounts.remote_fetch_accounts(ctx.store)]
