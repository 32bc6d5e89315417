"""SMTP out: to the LAN mail server, the smarthost or a domain's MX.

Runs in worker threads (smtplib is blocking). Opportunistic STARTTLS, AUTH
when the destination has credentials (only over TLS unless the server is on
loopback or a Trusted Network), the four Advanced SMTP timeouts, and reuse of
idle connections per destination."""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from ..addresses import in_networks, is_clean
from ..headers import safe_text
from ..mx import LookupFailed, mail_hosts
from ..route import Destination

log = logging.getLogger("gatebox.smtp")

IDLE_REUSE_SECONDS = 20
MAX_IDLE_PER_SERVER = 32
# A connection returned after a completed transaction moments ago is reused
# without an RSET round trip; an older one is probed first.
TRUST_CLEAN_SECONDS = 2.0


@dataclass(frozen=True)
class Result:
    status: str     # sent | temp | perm
    detail: str
    relay: str = ""


def _classify(code: int, text, relay: str) -> Result:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    # A remote reply goes into the log and DSN headers: printable text only.
    detail = safe_text(f"{code} {text}", 900)
    if 200 <= code < 300:
        return Result("sent", detail, relay)
    return Result("perm" if 500 <= code < 600 else "temp", detail, relay)


class _Failure(Exception):
    """The whole attempt failed before any recipient was decided."""

    def __init__(self, result: Result, try_next_host: bool):
        super().__init__(result.detail)
        self.result = result
        self.try_next_host = try_next_host


class _Connection:
    def __init__(self, smtp: smtplib.SMTP, relay: str, tls: bool):
        self.smtp, self.relay, self.tls = smtp, relay, tls
        self.last_used = time.monotonic()

    def close(self):
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()


class SmtpDelivery:
    def __init__(self, helo_name: str):
        self.helo_name = helo_name
        self._idle: dict[tuple, list[_Connection]] = {}
        self._lock = threading.Lock()
        self._tls = ssl.create_default_context()
        # Opportunistic TLS, as Postfix's "may" level: encrypt when offered,
        # do not refuse to deliver over an unverifiable certificate.
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE

    def deliver(self, destination: Destination, sender: str, recipients: list[str],
                message: bytes, settings, body_8bit: bool = False) -> dict[str, Result]:
        refused = _unsendable(sender, recipients)
        recipients = [r for r in recipients if r not in refused]
        if not recipients:
            return refused
        return {**refused, **self._deliver(destination, sender, recipients, message, settings,
                                           body_8bit)}

    def _deliver(self, destination, sender, recipients, message, settings, body_8bit):
        try:
            targets = self._targets(destination, settings)
        except LookupFailed as error:
            result = Result("perm" if error.permanent else "temp", str(error))
            return {r: result for r in recipients}
        last = Result("temp", "no mail server could be reached")
        for host, address, port in targets:
            try:
                return self._attempt(destination, host, address, port, sender, recipients,
                                     message, settings, body_8bit)
            except _Failure as failure:
                last = failure.result
                if not failure.try_next_host:
                    break
        return {r: last for r in recipients}

    def close_idle(self, older_than: float = 0.0):
        now = time.monotonic()
        with self._lock:
            stale = []
            for key, connections in self._idle.items():
                keep = [c for c in connections if now - c.last_used < older_than]
                stale += [c for c in connections if c not in keep]
                self._idle[key] = keep
        for connection in stale:
            connection.close()

    # ---- internals -------------------------------------------------------------
    def _targets(self, destination: Destination, settings):
        if destination.kind != "mx":
            return [(destination.host, destination.host, destination.port)]
        return [(host, address, 25) for host, addresses in mail_hosts(destination.host, settings)
                for address in addresses]

    def _attempt(self, destination, host, address, port, sender, recipients, message, settings,
                 body_8bit):
        key = (address, port, destination.login)
        connection = self._take_idle(key)
        if connection is not None:
            try:
                results = self._transaction(connection, sender, recipients, message, settings,
                                            body_8bit)
                self._give_back(key, connection)
                return results
            except (smtplib.SMTPServerDisconnected, OSError):
                # The server dropped an idle connection: try once on a new one.
                connection.smtp.close()
        connection = self._connect(destination, host, address, port, settings)
        try:
            results = self._transaction(connection, sender, recipients, message, settings, body_8bit)
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            connection.smtp.close()
            raise _Failure(Result("temp", f"lost connection with {connection.relay}: {error}",
                                  connection.relay), try_next_host=True) from None
        self._give_back(key, connection)
        return results

    def _take_idle(self, key):
        now = time.monotonic()
        while True:
            with self._lock:
                connections = self._idle.get(key) or []
                connection = connections.pop() if connections else None
            if connection is None:
                return None
            if now - connection.last_used > IDLE_REUSE_SECONDS:
                connection.close()
                continue
            if now - connection.last_used < TRUST_CLEAN_SECONDS:
                return connection  # just came back from a finished transaction
            try:
                code, _ = connection.smtp.rset()
                if code == 250:
                    return connection
            except (smtplib.SMTPException, OSError):
                pass
            connection.smtp.close()

    def _give_back(self, key, connection: _Connection):
        connection.last_used = time.monotonic()
        with self._lock:
            pool = self._idle.setdefault(key, [])
            if len(pool) < MAX_IDLE_PER_SERVER:
                pool.append(connection)
                return
        connection.close()

    def _connect(self, destination: Destination, host, address, port, settings) -> _Connection:
        relay = f"{host}[{address}]:{port}"
        smtp = smtplib.SMTP(local_hostname=self.helo_name,
                            timeout=settings["email.timeout_connect_min"] * 60)
        smtp._host = host  # smtplib names the TLS peer by it (SNI); connect() leaves it unset
        try:
            code, banner = smtp.connect(address, port)
        except (OSError, smtplib.SMTPException) as error:
            smtp.close()
            raise _Failure(Result("temp", f"connect to {relay}: {error}", relay),
                           try_next_host=True) from None
        try:
            smtp.sock.settimeout(settings["email.timeout_command_min"] * 60)
            if code != 220:
                raise _Failure(_classify(code, banner, relay), try_next_host=True)
            code, reply = smtp.ehlo()
            if code != 250:
                code, reply = smtp.helo()
                if code != 250:
                    raise _Failure(_classify(code, reply, relay), try_next_host=True)
            tls = False
            if smtp.has_extn("starttls"):
                code, reply = smtp.starttls(context=self._tls)
                if code != 220:
                    raise _Failure(_classify(code, reply, relay), try_next_host=True)
                smtp.ehlo()
                tls = True
            if destination.login:
                self._authenticate(smtp, destination, address, relay, tls, settings)
        except _Failure:
            smtp.close()
            raise
        except (smtplib.SMTPException, OSError) as error:
            smtp.close()
            raise _Failure(Result("temp", f"{relay}: {error}", relay), try_next_host=True) from None
        return _Connection(smtp, relay, tls)

    def _authenticate(self, smtp, destination, address, relay, tls, settings):
        nearby = address.startswith("127.") or address == "::1" or in_networks(
            address, settings["email.trusted_networks"])
        if not tls and not nearby:
            raise _Failure(Result("temp", f"{relay} offers no STARTTLS; not sending the password "
                                          "in clear text", relay), try_next_host=True)
        try:
            smtp.login(destination.login, destination.password)
        except smtplib.SMTPAuthenticationError as error:
            # Held, not bounced: wrong credentials are the administrator's to fix.
            raise _Failure(Result("temp", f"SASL authentication failed at {relay}: "
                                          f"{error.smtp_code} {error.smtp_error!r}", relay),
                           try_next_host=False) from None
        except smtplib.SMTPNotSupportedError:
            raise _Failure(Result("temp", f"{relay} does not offer AUTH", relay),
                           try_next_host=False) from None

    def _transaction(self, connection: _Connection, sender, recipients, message, settings,
                     body_8bit) -> dict[str, Result]:
        smtp, relay = connection.smtp, connection.relay
        options = []
        if smtp.has_extn("size"):
            options.append(f"SIZE={len(message)}")
        if body_8bit and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        # The paths go out as they were accepted: smtplib's mail() and rcpt()
        # re-parse an address as a header ("a,b@c" or one with a comment
        # comes out as another address).
        mail = f"MAIL FROM:<{sender}>" + "".join(f" {o}" for o in options)
        rcpts = [f"RCPT TO:<{recipient}>" for recipient in recipients]
        if smtp.has_extn("pipelining"):
            mail_reply, rcpt_replies, data_reply = _pipelined_envelope(smtp, mail, rcpts)
        else:
            mail_reply, rcpt_replies, data_reply = _lockstep_envelope(smtp, mail, rcpts)
        results, accepted = {}, []
        if mail_reply[0] != 250:
            result = _classify(*mail_reply, relay)
            results = {r: result for r in recipients}
        else:
            for recipient, (code, reply) in zip(recipients, rcpt_replies):
                if _recipient_accepted(code):
                    accepted.append(recipient)
                else:
                    results[recipient] = _classify(code, reply, relay)
        if not accepted or data_reply[0] != 354:
            if data_reply[0] == 354:
                # A pipelined DATA the server took although no recipient was
                # accepted: an empty message ends it (RFC 2920, 3.1).
                smtp.send(b".\r\n")
                smtp.getreply()
            smtp.rset()
            if accepted:
                final = _classify(*data_reply, relay)
                results.update({r: final for r in accepted})
            return results
        smtp.sock.settimeout(max(settings["email.timeout_datablock_min"],
                                 settings["email.timeout_termination_min"]) * 60)
        try:
            code, reply = send_body(smtp, message)
        finally:
            if smtp.sock is not None:
                smtp.sock.settimeout(settings["email.timeout_command_min"] * 60)
        final = _classify(code, reply, relay)
        for recipient in accepted:
            results[recipient] = final
        return results


_NO_REPLY = (503, b"not sent")


def _command_line(command: str) -> str:
    # smtplib's putcmd() guard, for lines that go out in one write (putcmd
    # sends each on its own): a CR or LF would end the command early and
    # start another one of the address's choosing.
    if "\r" in command or "\n" in command:
        raise ValueError(f"command contains prohibited newline characters: {command!r}")
    return command + "\r\n"


def _pipelined_envelope(smtp: smtplib.SMTP, mail: str, rcpts: list[str]):
    """MAIL, every RCPT and DATA in one write, then their replies in order
    (RFC 2920): one round trip where lockstep takes one per command."""
    smtp.send("".join(_command_line(c) for c in (mail, *rcpts, "DATA")))
    mail_reply = smtp.getreply()
    rcpt_replies = [smtp.getreply() for _ in rcpts]
    return mail_reply, rcpt_replies, smtp.getreply()


def _lockstep_envelope(smtp: smtplib.SMTP, mail: str, rcpts: list[str]):
    mail_reply = smtp.docmd(mail)
    if mail_reply[0] != 250:
        return mail_reply, [], _NO_REPLY
    rcpt_replies = [smtp.docmd(rcpt) for rcpt in rcpts]
    if not any(_recipient_accepted(code) for code, _ in rcpt_replies):
        return mail_reply, rcpt_replies, _NO_REPLY
    return mail_reply, rcpt_replies, smtp.docmd("DATA")


def _recipient_accepted(code: int) -> bool:
    return code in (250, 251)


DATA_CHUNK = 64 * 1024
_LEADING_DOT = re.compile(rb"(?m)^\.")


def send_data(smtp: smtplib.SMTP, message: bytes) -> tuple[int, bytes]:
    """smtplib's data(), sending the message dot-stuffed in chunks cut at
    line ends: its own builds the stuffed copy and two more joined copies
    (CRLF, the final dot), three times a large message's size in memory."""
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    return send_body(smtp, message)


def send_body(smtp: smtplib.SMTP, message: bytes) -> tuple[int, bytes]:
    """The message after a 354, dot-stuffed, and the final dot; the reply."""
    start, view = 0, memoryview(message)
    ending = b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n"
    while True:
        end = message.find(b"\n", start + DATA_CHUNK)
        end = len(message) if end < 0 else end + 1
        # A chunk starts at a line's start, so ^ matches exactly where
        # stuffing the whole message would.
        chunk = _LEADING_DOT.sub(b"..", view[start:end])
        start = end
        if start >= len(message):
            # The last chunk and the final dot in one write: a dot sent on
            # its own waits for the peer to acknowledge the chunk (Nagle),
            # and a peer with nothing to answer yet delays that ACK (40 ms).
            smtp.send(chunk + ending)
            return smtp.getreply()
        smtp.send(chunk)


def _unsendable(sender: str, recipients: list[str]) -> dict[str, Result]:
    """Recipients that must not be put into an SMTP command, with why. The
    queue takes no such address (submit refuses it); this holds for any
    file that reached the queue another way."""
    if not is_clean(sender):
        reason = Result("perm", "the envelope sender holds characters not allowed in an "
                                f"address (5.1.7): <{safe_text(sender, 100)}>; not sent")
        return {r: reason for r in recipients}
    return {r: Result("perm", "the recipient holds characters not allowed in an address "
                              f"(5.1.3): <{safe_text(r, 100)}>; not sent")
            for r in recipients if not is_clean(r)}
