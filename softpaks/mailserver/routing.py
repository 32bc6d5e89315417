"""The server types with mailboxes on the box (Stand-Alone, Multi-drop,
Mirrored, ETRN, Mail-bagging): mail for the local domains goes to the local
delivery agent, and mail no user (with Email permission), alias, list or
forwarder answers to is refused at RCPT time when Address Verification says
Reject. In Relay these rules do not apply and the core routes decide."""

from __future__ import annotations

from firmware.mail import addresses, server_type
from firmware.mail.policy import Check, Context, Order, reject
from firmware.mail.route import Destination

from . import directory, groups, settings as keys

LOCAL = Destination("local", "mailboxes", 0)


def applies(settings) -> bool:
    return server_type.keeps_mailboxes(settings)


def is_local_address(address: str, settings) -> bool:
    domain = addresses.parse(address).domain
    return bool(domain) and domain.lower() in directory.local_domains(settings)


def route_local(recipient: str, direction: str, settings):
    if applies(settings) and is_local_address(recipient, settings):
        return recipient, LOCAL
    return None


def is_addressable(store, name: str) -> bool:
    return groups.mail_kind(store, name.lower()) is not None


def unaddressable_check(store):
    def check(ctx: Context):
        settings = ctx.settings
        if not applies(settings) or settings[keys.UNADDRESSABLE] != "reject":
            return None
        address = addresses.parse(ctx.recipient)
        if not address.domain or address.domain.lower() not in directory.local_domains(settings):
            return None
        if is_addressable(store, address.local):
            return None
        return reject("5.1.1", f"<{ctx.recipient}>: Recipient address rejected: "
                               "User unknown in local recipient table")
    # After the core relay and routing checks, which answer first for other domains.
    return Check("mailserver_unaddressable", "rcpt", check, order=Order.LOCAL)


def sender_permission_check(store):
    """An account without Email permission may not send through the box
    either (SMTP AUTH still proves who it is: the answer says why)."""
    def check(ctx: Context):
        if not applies(ctx.settings) or not ctx.auth_user or groups.has_email(store, ctx.auth_user):
            return None
        return reject("5.7.1", f"<{ctx.auth_user}>: this account has no Email permission on this "
                               "box (Users & Groups > Groups)")
    # After the core's sender checks, so a malformed sender hears about that first.
    return Check("mailserver_email_permission", "mail", check, order=Order.LOCAL)
