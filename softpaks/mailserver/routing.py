"""Stand-alone mode: mail for the local domains goes to the local delivery
agent, and mail no user, alias, list or forwarder answers to is refused at
RCPT time when Address Verification says Reject. In every other server type
(Relay above all) these rules do not apply and the core routes decide."""

from __future__ import annotations

from firmware.mail import addresses
from firmware.mail.policy import Check, Context, reject
from firmware.mail.route import Destination

from . import directory, settings as keys

LOCAL = Destination("local", "mailboxes", 0)


def applies(settings) -> bool:
    return settings["email.server_type"] == "standalone"


def is_local_address(address: str, settings) -> bool:
    domain = addresses.parse(address).domain
    return bool(domain) and domain.lower() in directory.local_domains(settings)


def route_local(recipient: str, direction: str, settings):
    if applies(settings) and is_local_address(recipient, settings):
        return recipient, LOCAL
    return None


def is_addressable(store, name: str) -> bool:
    return directory.kind_of(store, name.lower()) is not None


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
    return Check("mailserver_unaddressable", "rcpt", check, order=30)
