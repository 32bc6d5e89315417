"""The LAN mail server's and the Relay Server's SMTP: the greeting, EHLO,
STARTTLS when offered, and authentication as the delivery agent would do it
(firmware/mail/deliver/smtp.py), then one MAIL FROM / RCPT TO, never DATA, to
see whether the server takes mail from the box as configured."""

from __future__ import annotations

import smtplib
import socket
import ssl

from firmware.config.types import Invalid, split_host_port
from firmware.mail.addresses import in_networks

from .result import Context, Outcome, failed, passed, warned

SOCKET_SECONDS = 10.0
# A domain that can never exist (RFC 2606): a relay that accepts it relays.
PROBE_DOMAIN = "relay-check.invalid"


def _tls_context() -> ssl.SSLContext:
    # As the delivery agent: opportunistic STARTTLS takes any certificate.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _nearby(address: str, context: Context) -> bool:
    return address.startswith("127.") or address == "::1" or \
        in_networks(address, context["email.trusted_networks"])


def lan_server(context: Context) -> Outcome:
    address = context["email.mail_server_address"]
    if not address:
        return failed("no Mail Server Address is set: mail for the office waits in the queue",
                      "Set Mail Server Address (Email Server > Settings) to the LAN mail "
                      "server, host or host:port.")
    auth = context["email.mail_server_auth"]
    domain = context["email.domain"]
    recipient = f"postmaster@{domain}" if domain not in ("", "*") else "postmaster"
    return _probe(context, "Mail Server", address, auth, context["email.mail_server_login"],
                  context["email.mail_server_password"], recipient,
                  "Mail Server Requires Authentication")


def relay_server(context: Context) -> Outcome:
    address = context["email.relay_server_address"]
    if not address:
        return passed("no Relay Server is set: the box delivers to each domain's MX itself")
    return _probe(context, "Relay Server", address, context["email.relay_server_auth"],
                  context["email.relay_server_login"], context["email.relay_server_password"],
                  f"postmaster@{PROBE_DOMAIN}", "Relay Server Requires Authentication")


def _probe(context: Context, label: str, address: str, auth: bool, login: str, password: str,
           recipient: str, auth_setting: str) -> Outcome:
    try:
        host, port = split_host_port(address, 25)
    except Invalid as error:
        return failed(f"{label} Address {address!r}: {error}",
                      f"Correct the {label} Address (Email Server > Settings).")
    where = f"{label} {host}:{port}"
    fix_reach = (f"Check the {label} Address and port, that the server runs, and that no "
                 "firewall blocks the box.")
    smtp = smtplib.SMTP(local_hostname=context["system.hostname"], timeout=SOCKET_SECONDS)
    try:
        try:
            code, banner = smtp.connect(host, port)
        except (OSError, smtplib.SMTPException) as error:
            return failed(f"{where}: no connection: {_text(error)}", fix_reach)
        banner = _decode(banner)
        if code != 220:
            return failed(f"{where} greets with {code} {banner}",
                          f"The server at {host}:{port} does not take mail now; see its log.")
        code, reply = smtp.ehlo()
        if code != 250:
            code, reply = smtp.helo()
            if code != 250:
                return failed(f"{where} refuses HELO: {code} {_decode(reply)}",
                              f"Let the server accept the box's Host Name "
                              f"{context['system.hostname']} in HELO.")
        tls = False
        if smtp.has_extn("starttls"):
            code, reply = smtp.starttls(context=_tls_context())
            if code != 220:
                return failed(f"{where} offers STARTTLS but refuses it: {code} {_decode(reply)}",
                              "Fix the server's TLS configuration (its certificate and key).")
            smtp.ehlo()
            tls = True
        peer = smtp.sock.getpeername()[0]
        said = f"{where} greets: {banner[:120]}" + ("; STARTTLS" if tls else "")
        if auth:
            if not smtp.has_extn("auth"):
                return failed(f"{said}; {auth_setting} is on but the server offers no AUTH",
                              f"Turn off {auth_setting}, or enable authentication on the server.")
            if not tls and not _nearby(peer, context):
                return failed(f"{said}; no STARTTLS, so the box will not send the password",
                              "Enable STARTTLS on the server, or reach it over the LAN.")
            try:
                smtp.login(login, password)
            except smtplib.SMTPAuthenticationError as error:
                return failed(f"{said}; authentication as {login!r} failed: "
                              f"{error.smtp_code} {_decode(error.smtp_error)}",
                              f"Correct the Login Name and Password of the {label} "
                              "(Email Server > Settings).")
            except smtplib.SMTPException as error:
                return failed(f"{said}; authentication failed: {_text(error)}",
                              "Check the server's AUTH mechanisms (PLAIN or LOGIN).")
            said += f"; authenticated as {login}"
        sender = f"postmaster@{context['email.domain']}" if context["email.domain"] != "*" \
            else "postmaster"
        code, reply = smtp.mail(sender)
        if code == 250:
            code, reply = smtp.rcpt(recipient)
        reply = _decode(reply)
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            pass  # a server that hung up after refusing has said what counts
        if code == 530 or (code >= 500 and "auth" in reply.lower()):
            return failed(f"{said}; the server wants authentication: {code} {reply}",
                          f"Turn on {auth_setting} with the Login Name and Password the server "
                          "expects.")
        if code >= 500:
            box = smtp.sock.getsockname()[0]
            return failed(f"{said}; refuses mail from the box: {code} {reply}",
                          f"Let the server accept mail from the box at {box} (its relay or "
                          f"access settings), or turn on {auth_setting}.")
        if code >= 400:
            return warned(f"{said}; answers {code} {reply} for now",
                          "A temporary refusal (greylisting, load): run the diagnostics again "
                          "later; if it stays, see the server's log.")
        return passed(f"{said}; accepts mail")
    except (OSError, smtplib.SMTPException) as error:
        return failed(f"{where}: {_text(error)}", fix_reach)
    finally:
        try:
            smtp.close()
        except OSError:
            pass


def _decode(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value).split())


def _text(error: Exception) -> str:
    if isinstance(error, socket.timeout):
        return f"timed out after {SOCKET_SECONDS:g} s"
    return getattr(error, "strerror", None) or str(error) or error.__class__.__name__
