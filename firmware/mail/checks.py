"""The core policy checks (Email Server > Settings and > Advanced)."""

from __future__ import annotations

import ipaddress

from firmware.config.types import is_hostname

from . import addresses
from .policy import Check, Context, reject, tempfail
from .route import is_local_domain



def server_enabled(ctx: Context):
    if not ctx.settings["email.server_enabled"]:
        return tempfail("4.3.2", "Service not available: the mail server is disabled", 421)
    return None


def helo_syntax(ctx: Context):
    name = ctx.helo.strip()
    literal = addresses.literal_ip(name)
    if literal is not None:
        return None
    allow_underscore = ctx.settings["email.allow_nonstandard_helo"]
    if not is_hostname(name, allow_underscore=allow_underscore):
        if "_" in name and is_hostname(name, allow_underscore=True):
            return reject("5.5.2", f"Invalid HELO name {name!r}: underscores are not allowed "
                                   "(Allow Non-standard HELO Names is off)", 501)
        return reject("5.5.2", f"Invalid HELO name {name!r}", 501)
    return None


def helo_impersonation(ctx: Context):
    """Manual, step 5: a host outside Trusted Networks that calls itself by
    our Domain Name or our address is rejected."""
    if ctx.trusted:
        return None
    name = ctx.helo.strip().lower().rstrip(".")
    ours = {ctx.settings["email.domain"], ctx.settings["system.hostname"].lower()} - {"*"}
    literal = addresses.literal_ip(name)
    claimed_ip = None
    if literal is not None:
        claimed_ip = literal
    else:
        try:
            claimed_ip = ipaddress.ip_address(name)
        except ValueError:
            pass
    if name in ours or (claimed_ip is not None and ctx.local_ip and
                        claimed_ip == ipaddress.ip_address(ctx.local_ip.split("%")[0])):
        return reject("5.7.1", f"Client host rejected: you are not {name}")
    return None


def submission_requires_auth(ctx: Context):
    if ctx.port_kind == "submission" and not ctx.may_relay:
        return reject("5.7.0", "Authentication required", 530)
    return None


def sender_syntax(ctx: Context):
    if not ctx.sender:
        return None  # the null sender of bounces
    address = addresses.parse(ctx.sender)
    if not address.domain or address.source_route:
        return reject("5.1.7", f"Sender address rejected: <{ctx.sender}> is not a full address", 553)
    return None


def recipient_routing(ctx: Context):
    """Relay tricks in the recipient (user%host@us, host!user, "user@host"@us,
    @us:user@host) are refused to untrusted clients."""
    if ctx.may_relay:
        return None
    address = addresses.parse(ctx.recipient)
    if address.source_route:
        return reject("5.7.1", f"<{ctx.recipient}>: Relay access denied (source routes are not accepted)")
    if address.routing_characters:
        return reject("5.7.1", f"<{ctx.recipient}>: Relay access denied (routing characters in address)")
    if not address.domain:
        return reject("5.1.3", f"<{ctx.recipient}>: Recipient address needs a domain", 553)
    return None


def relay_access(ctx: Context):
    """Mail for our Domain Name from anyone; for other domains only from
    Trusted Networks or authenticated clients."""
    if ctx.may_relay:
        return None
    address = addresses.parse(ctx.recipient)
    if address.is_address_literal or not is_local_domain(address.domain, ctx.settings):
        return reject("5.7.1", f"<{ctx.recipient}>: Relay access denied", 554)
    return None


def bare_line_endings(ctx: Context):
    """SMTP smuggling: a bare LF (or CR) can end DATA on other servers, so
    '\\n.\\n' hides a second message. Refuse the whole transaction."""
    message = ctx.message
    crlf = message.count(b"\r\n")
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
        return reject("5.5.2", "Message contains bare <LF> or <CR> line endings; refused "
                               "(RFC 5321 section 2.3.8)")
    return None


CORE_CHECKS = [
    Check("server_enabled", "connect", server_enabled, order=10),
    Check("helo_syntax", "helo", helo_syntax, order=10),
    Check("helo_impersonation", "helo", helo_impersonation, order=20),
    Check("submission_requires_auth", "mail", submission_requires_auth, order=10),
    Check("sender_syntax", "mail", sender_syntax, order=20),
    Check("recipient_routing", "rcpt", recipient_routing, order=10),
    Check("relay_access", "rcpt", relay_access, order=20),
    Check("bare_line_endings", "data", bare_line_endings, order=10),
]
