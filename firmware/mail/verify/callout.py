"""SMTP callouts: ask a mail server whether it would take mail for an
address (`MAIL FROM:<>`, `RCPT TO:<address>`, `QUIT`), without ever sending
a message. The sender callout asks the sender domain's MX; the recipient
callout asks the LAN mail server.

Every server is untrusted: replies are read with a cap on line length and on
the number of lines, each host has its own time limit and the whole call a
budget, and a server that cannot give a clear answer decides nothing (the
next host is asked)."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass

from .. import mx
from ..headers import safe_text
from ..smtp_reply import (LINE_LIMIT, REPLY_TEXT_LIMIT, ProtocolError, Reply, quit_session,
                          read_reply)

CALLOUT_PORT = 25
ADDRESS_LIMIT = 254        # RFC 5321 4.5.3.1.3: a path is at most 256 octets with its <>

ACCEPTED, REFUSED, UNREACHABLE = "accepted", "refused", "unreachable"

# Printable ASCII without space and the path's own delimiters. No SMTPUTF8 is
# asked for, so nothing beyond ASCII may go on the wire.
_ADDRESS_CHARS = re.compile(r"[!-~]+")
_FORBIDDEN_IN_ADDRESS = set("<>")


@dataclass(frozen=True)
class CalloutAnswer:
    status: str      # ACCEPTED | REFUSED | UNREACHABLE
    reply: str       # the deciding server reply, sanitised, or why no server decided
    host: str = ""   # "address:port" of the server that answered (or was tried last)


def check_address(address: str) -> str:
    """The address as it may go between the <> of RCPT TO, or ValueError.
    The caller validated it already; this stops anything that would let a
    caller's mistake inject a command."""
    if not isinstance(address, str) or not address:
        raise ValueError("empty address")
    if len(address) > ADDRESS_LIMIT:
        raise ValueError(f"address longer than {ADDRESS_LIMIT} characters")
    if not _ADDRESS_CHARS.fullmatch(address) or _FORBIDDEN_IN_ADDRESS & set(address):
        raise ValueError(f"address with a character SMTP cannot carry here: {address!r}")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not a mailbox address: {address!r}")
    return address


def can_ask_about(address: str) -> bool:
    """Whether a callout can carry this address (callouts do not ask for
    SMTPUTF8, so an internationalised address cannot be asked about)."""
    try:
        check_address(address)
    except ValueError:
        return False
    return True


def check_helo(helo: str) -> str:
    if not isinstance(helo, str) or not helo or not _ADDRESS_CHARS.fullmatch(helo) \
            or len(helo) > ADDRESS_LIMIT:
        raise ValueError(f"not a HELO name: {helo!r}")
    return helo


def host_label(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class _HostFailed(Exception):
    """This host decides nothing; the reason is said to the caller when no
    other host decides either."""


# Callouts under way in this process at most: strangers decide how many
# addresses the box asks about, and neither the LAN server nor other sites'
# servers may be hammered through it. Past the cap a question is not asked
# (unreachable: the client is deferred and retries later).
MAX_CONCURRENT = 8
_running = 0


def busy() -> bool:
    return _running >= MAX_CONCURRENT


async def callout(hosts: list[tuple[str, int]], recipient: str, *, helo: str,
                  budget: float = 20.0, per_host: float = 10.0) -> CalloutAnswer:
    """Ask each (address, port) in order whether it takes `recipient`, until
    one says yes (2xx) or no (5xx) to RCPT. The whole call takes at most
    `budget` seconds, each host at most `per_host`."""
    global _running
    check_address(recipient)
    check_helo(helo)
    if busy():
        return CalloutAnswer(UNREACHABLE, f"{MAX_CONCURRENT} callouts are under way already")
    _running += 1
    try:
        return await _callout(hosts, recipient, helo, budget, per_host)
    finally:
        _running -= 1


async def _callout(hosts, recipient: str, helo: str, budget: float, per_host: float):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    reason, label = "no mail host to ask", ""
    for address, port in hosts:
        label = host_label(address, port)
        now = loop.time()
        if now >= deadline:
            reason = f"{reason}; no time left for {label}"
            break
        try:
            reply = await _ask(address, port, recipient, helo, min(now + per_host, deadline))
        except _HostFailed as failure:
            reason = f"{label}: {failure}"
            continue
        status = ACCEPTED if reply.code < 300 else REFUSED
        return CalloutAnswer(status, reply.text, label)
    return CalloutAnswer(UNREACHABLE, safe_text(reason, REPLY_TEXT_LIMIT), label)


def refuses_the_box(answer: CalloutAnswer) -> bool:
    """A 5.7.x refusal (relay or policy) is about the box asking, not about
    the address: it says nothing of whether the mailbox exists."""
    return answer.status == REFUSED and answer.reply[4:8] == "5.7."


async def accepts_anything(host: tuple[str, int], domain: str, *, helo: str,
                           budget: float = 20.0) -> CalloutAnswer:
    """Ask `host` about a local part nobody has: accepted means the server
    takes any address at `domain` (a catch-all), so its answers about real
    recipients say nothing."""
    probe = f"gatebox-probe-{secrets.token_hex(8)}@{domain}"
    return await callout([host], probe, helo=helo, budget=budget, per_host=budget)


def sender_mx_hosts(domain: str, settings, resolver=None) -> list[tuple[str, int]]:
    """The sender domain's mail hosts as callout targets, in MX order. For a
    worker thread (the resolver's blocking facade); mx.LookupFailed passes
    through, its `permanent` telling "no mail server" from "ask later"."""
    targets: list[tuple[str, int]] = []
    for _, addresses in mx.mail_hosts(domain, settings, resolver):
        for address in addresses:
            if (address, CALLOUT_PORT) not in targets:
                targets.append((address, CALLOUT_PORT))
    return targets


async def _ask(address: str, port: int, recipient: str, helo: str,
               host_deadline: float) -> Reply:
    """The RCPT reply of one host when it is a definite 2xx or 5xx."""
    try:
        async with asyncio.timeout_at(host_deadline):
            reader, writer = await asyncio.open_connection(address, port, limit=LINE_LIMIT)
    except TimeoutError:
        raise _HostFailed("no connection before the time limit") from None
    except OSError as error:
        raise _HostFailed(f"cannot connect: {error.strerror or error}") from None
    stage = ["greeting"]
    try:
        async with asyncio.timeout_at(host_deadline):
            return await _dialogue(reader, writer, recipient, helo, stage)
    except TimeoutError:
        raise _HostFailed(f"no reply to {stage[0]} before the time limit") from None
    except ProtocolError as error:
        raise _HostFailed(f"{error} (at {stage[0]})") from None
    except OSError as error:
        raise _HostFailed(f"connection lost at {stage[0]}: {error.strerror or error}") from None
    finally:
        # Within the host's own limit: a server that let it run out gets its
        # QUIT but no more waiting.
        await quit_session(reader, writer, host_deadline)


async def _dialogue(reader, writer, recipient: str, helo: str, stage: list) -> Reply:
    greeting = await read_reply(reader)
    if greeting.code >= 300:
        raise _HostFailed(f"greeting {greeting.text}")
    stage[0] = "EHLO"
    hello = await _command(reader, writer, f"EHLO {helo}")
    if hello.code >= 500:
        stage[0] = "HELO"
        hello = await _command(reader, writer, f"HELO {helo}")
    if hello.code >= 300:
        raise _HostFailed(f"{stage[0]} answered {hello.text}")
    stage[0] = "MAIL FROM"
    mail = await _command(reader, writer, "MAIL FROM:<>")
    if mail.code >= 300:
        # A server that refuses the null sender refuses bounces; it says
        # nothing about the address.
        raise _HostFailed(f"MAIL FROM:<> answered {mail.text}")
    stage[0] = "RCPT TO"
    rcpt = await _command(reader, writer, f"RCPT TO:<{recipient}>")
    if 300 <= rcpt.code < 500:
        raise _HostFailed(f"RCPT TO answered {rcpt.text}")
    return rcpt


async def _command(reader, writer, line: str) -> Reply:
    writer.write(line.encode("ascii") + b"\r\n")
    await writer.drain()
    return await read_reply(reader)
