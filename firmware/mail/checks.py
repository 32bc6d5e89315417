"""The core policy checks (Email Server > Settings and > Advanced). Every
refusal smtpd makes is one of these, or a SoftPak's, so that it is logged
with its name and counted.

Per-session command limits follow Postfix: smtpd_junk_command_limit (NOOP,
RSET, VRFY; clients that may not relay) and smtpd_hard_error_limit for
commands the server does not know. RFC 5321 sets no number for either."""

from __future__ import annotations

import ipaddress

from firmware.config import UNLIMITED
from firmware.config.types import is_hostname

from . import addresses
from .headers import safe_text, summary
from .policy import Check, Context, Order, reject, tempfail
from .route import is_local_domain

MAX_RECIPIENTS = 1000            # per message (Postfix: smtpd_recipient_limit)
MAX_HOPS = 50                    # Received headers before we call it a loop
JUNK_COMMANDS = frozenset({"NOOP", "RSET", "VRFY"})
JUNK_COMMAND_LIMIT = 100         # per session (Postfix: smtpd_junk_command_limit)
UNKNOWN_COMMAND_LIMIT = 20       # per session (Postfix: smtpd_hard_error_limit)
AUTH_FAILURE_LIMIT = 3           # failed AUTH commands per session
# Refused RCPTs per session from clients that may not relay (Postfix's
# smtpd_hard_error_limit, 20): guessing addresses (directory harvesting) and
# making the box ask its LAN server about each guess both end here.
RECIPIENT_REFUSAL_LIMIT = 20
MEGABYTE = 1024 * 1024
# Space the queue keeps for the queue manager's own writes (a deferral
# rewrites a whole file, a bounce is a new one): Postfix's queue_minfree, an
# eighth of a small file system at most.
QUEUE_RESERVE = 16 * MEGABYTE


def message_size_limit(settings) -> int | None:
    """Octets, or None for unlimited."""
    size = settings["email.max_message_size_mb"]
    return None if size == UNLIMITED else size * MEGABYTE


# ---- connect -------------------------------------------------------------------------


def server_enabled(ctx: Context):
    if not ctx.settings["email.server_enabled"]:
        return tempfail("4.3.2", "Service not available: the mail server is disabled", 421)
    return None


def max_connections(ctx: Context):
    limit = ctx.settings["email.max_connections"]
    if limit != UNLIMITED and ctx.total_connections > limit:
        return tempfail("4.7.0", f"Too many connections (limit {limit}), try again later", 421)
    return None


def max_connections_per_host(ctx: Context):
    limit = ctx.settings["email.max_connections_per_host"]
    if limit != UNLIMITED and ctx.host_connections > limit:
        return tempfail("4.7.0", f"Too many connections from {ctx.client_ip} (limit {limit})", 421)
    return None


# ---- command -------------------------------------------------------------------------
def command_limits(ctx: Context):
    """Counted before each command; the command that goes over is refused
    and the connection closed."""
    counts = ctx.command_counts
    if not ctx.command_known:
        if counts.get("*", 0) > UNKNOWN_COMMAND_LIMIT:
            return tempfail("4.7.0", f"Error: too many unknown commands "
                                     f"(limit {UNKNOWN_COMMAND_LIMIT})", 421)
        return None
    if ctx.command in JUNK_COMMANDS and not ctx.may_relay:
        junk = sum(counts.get(c, 0) for c in JUNK_COMMANDS)
        if junk > JUNK_COMMAND_LIMIT:
            return tempfail("4.7.0", f"Error: too many NOOP, RSET or VRFY commands "
                                     f"(limit {JUNK_COMMAND_LIMIT})", 421)
    return None


def auth_failure_limit(ctx: Context):
    """A session that failed AUTH this many times is closed: smtpd asks the
    command stage again right after each failure, so the failure that
    reaches the limit is itself answered 421. Guessing across sessions is
    the login limiter's (firmware/login_limits.py)."""
    if ctx.auth_failures >= AUTH_FAILURE_LIMIT:
        return tempfail("4.7.0", f"Error: too many failed authentication attempts "
                                 f"(limit {AUTH_FAILURE_LIMIT})", 421)
    return None


# ---- helo ----------------------------------------------------------------------------
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


# ---- mail ----------------------------------------------------------------------------
def declared_size(ctx: Context):
    """RFC 1870: a SIZE= over the limit is refused at MAIL, before any data."""
    limit = message_size_limit(ctx.settings)
    if limit is not None and ctx.declared_size is not None and ctx.declared_size > limit:
        return reject("5.3.4", "Message size exceeds fixed limit", 552)
    return None


def queue_space(ctx: Context):
    """Refuse early rather than at the end of DATA: as Postfix does, a
    message needs twice its declared size above the reserve (its file and
    one rewrite of it)."""
    if ctx.queue_free is None:
        return None
    reserve = QUEUE_RESERVE
    if ctx.queue_capacity is not None:
        reserve = min(reserve, ctx.queue_capacity // 8)
    if ctx.queue_free < reserve + 2 * (ctx.declared_size or 0):
        return tempfail("4.3.1", "Insufficient system storage", 452)
    return None


def submission_requires_auth(ctx: Context):
    if ctx.port_kind == "submission" and not ctx.may_relay:
        return reject("5.7.0", "Authentication required", 530)
    return None


def _forbidden(address: str) -> str | None:
    """Why this address may not be taken, or None. smtpd hands the checks
    the path as the client sent it whenever it holds such characters, so
    nothing a parser dropped or re-quoted slips through."""
    found = addresses.forbidden_characters(address)
    if not found:
        return None
    shown = ", ".join(f"0x{ord(ch):02X}" for ch in dict.fromkeys(found))
    return (f"<{safe_text(address, 100)}> contains characters not allowed in an address "
            f"({shown[:60]})")


def sender_characters(ctx: Context):
    """Header injection: a CR, NUL, space or other control in MAIL FROM
    would travel into the Received field, DSNs and the outbound command."""
    problem = _forbidden(ctx.sender)
    if problem:
        return reject("5.1.7", f"Sender address rejected: {problem}", 501)
    return None


def sender_syntax(ctx: Context):
    if not ctx.sender:
        return None  # the null sender of bounces
    address = addresses.parse(ctx.sender)
    if not address.domain or address.source_route:
        return reject("5.1.7", f"Sender address rejected: <{safe_text(ctx.sender)}> "
                               "is not a full address", 553)
    return None


# ---- rcpt ----------------------------------------------------------------------------
def max_recipients(ctx: Context):
    if len(ctx.recipients) >= MAX_RECIPIENTS:
        return tempfail("4.5.3", "Error: too many recipients", 452)
    return None


def recipient_refusal_limit(ctx: Context):
    if not ctx.may_relay and ctx.refused_recipients >= RECIPIENT_REFUSAL_LIMIT:
        return tempfail("4.7.0", f"Error: too many refused recipients "
                                 f"(limit {RECIPIENT_REFUSAL_LIMIT})", 421)
    return None


def recipient_characters(ctx: Context):
    """As sender_characters, for RCPT TO, trusted and authenticated clients included."""
    problem = _forbidden(ctx.recipient)
    if problem:
        return reject("5.1.3", f"Recipient address rejected: {problem}", 501)
    return None


def recipient_routing(ctx: Context):
    """Relay tricks in the recipient (user%host@us, host!user, "user@host"@us,
    @us:user@host) are refused to untrusted clients."""
    if ctx.may_relay:
        return None
    address = addresses.parse(ctx.recipient)
    shown = safe_text(ctx.recipient)
    if address.source_route:
        return reject("5.7.1", f"<{shown}>: Relay access denied (source routes are not accepted)")
    if address.routing_characters:
        return reject("5.7.1", f"<{shown}>: Relay access denied (routing characters in address)")
    if not address.domain:
        return reject("5.1.3", f"<{shown}>: Recipient address needs a domain", 553)
    return None


def relay_access(ctx: Context):
    """Mail for our Domain Name from anyone; for other domains only from
    Trusted Networks or authenticated clients."""
    if ctx.may_relay:
        return None
    address = addresses.parse(ctx.recipient)
    if address.is_address_literal or not is_local_domain(address.domain, ctx.settings):
        return reject("5.7.1", f"<{safe_text(ctx.recipient)}>: Relay access denied", 554)
    return None


# ---- data ----------------------------------------------------------------------------
def message_size(ctx: Context):
    limit = message_size_limit(ctx.settings)
    if limit is not None and ctx.data_size > limit:
        return reject("5.3.4", "Message size exceeds fixed limit", 552)
    return None


def line_length(ctx: Context):
    """RFC 5321 4.5.3.1.6: 1000 octets a line, CRLF included, unless the
    administrator allows more (Maximum Line Length)."""
    limit = ctx.settings["email.max_line_length"]
    if limit != UNLIMITED and ctx.longest_line > limit:
        return reject("5.5.2", f"Line too long (limit {limit} octets, RFC 5321 section 4.5.3.1.6)",
                      500)
    return None


def max_hops(ctx: Context):
    if summary(ctx.message).received_count >= MAX_HOPS:
        return reject("5.4.6", "Too many hops (mail loop?)", 554)
    return None


def bare_line_endings(ctx: Context):
    """SMTP smuggling: a bare LF (or CR) can end DATA on other servers, so
    '\\n.\\n' hides a second message. Refuse the whole transaction."""
    bare = ctx.bare_line_endings
    if bare is None:
        message = ctx.message
        crlf = message.count(b"\r\n")
        bare = message.count(b"\n") != crlf or message.count(b"\r") != crlf
    if bare:
        return reject("5.5.2", "Message contains bare <LF> or <CR> line endings; refused "
                               "(RFC 5321 section 2.3.8)")
    return None


CORE_CHECKS = [
    Check("server_enabled", "connect", server_enabled, Order.FIRST),
    Check("max_connections", "connect", max_connections, Order.LIMITS),
    Check("max_connections_per_host", "connect", max_connections_per_host, Order.LIMITS),
    Check("command_limits", "command", command_limits, Order.LIMITS),
    Check("auth_failure_limit", "command", auth_failure_limit, Order.LIMITS),
    Check("helo_syntax", "helo", helo_syntax, Order.SYNTAX),
    Check("helo_impersonation", "helo", helo_impersonation, Order.RELAY),
    Check("declared_size", "mail", declared_size, Order.LIMITS),
    Check("queue_space", "mail", queue_space, Order.LIMITS),
    Check("submission_requires_auth", "mail", submission_requires_auth, Order.AUTH),
    Check("sender_characters", "mail", sender_characters, Order.SYNTAX),
    Check("sender_syntax", "mail", sender_syntax, Order.SYNTAX),
    Check("max_recipients", "rcpt", max_recipients, Order.LIMITS),
    Check("recipient_refusal_limit", "rcpt", recipient_refusal_limit, Order.LIMITS),
    Check("recipient_characters", "rcpt", recipient_characters, Order.SYNTAX),
    Check("recipient_routing", "rcpt", recipient_routing, Order.SYNTAX),
    Check("relay_access", "rcpt", relay_access, Order.RELAY),
    # The size and line checks come first: past either limit the message was
    # not kept, and no later check may look at what is left.
    Check("message_size", "data", message_size, Order.LIMITS),
    Check("line_length", "data", line_length, Order.LIMITS),
    Check("max_hops", "data", max_hops, Order.LIMITS),
    Check("bare_line_endings", "data", bare_line_endings, Order.SYNTAX),
]
