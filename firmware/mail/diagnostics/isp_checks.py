"""The ISP's side: the mailbox login and the number of messages waiting
(Multi-drop: the domain's mailbox; Mirrored: the server only, each user's
login belongs to the Mail Server SoftPak), the ETRN reply, the finger reply.
Plain poplib, imaplib, smtplib and a socket: base firmware cannot use the
Mail Server SoftPak's clients, and a diagnostic wants the raw answer anyway."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl

from firmware.config.types import Invalid, split_host_port

from .result import Context, Outcome, failed, passed, warned

SOCKET_SECONDS = 6.0
MAILBOX_PORTS = {("pop3", "tls"): 995, ("pop3", "starttls"): 110, ("pop3", "none"): 110,
                 ("imap", "tls"): 993, ("imap", "starttls"): 143, ("imap", "none"): 143}
ETRN_PORT = 25
FINGER_PORT = 79
FINGER_REPLY_BYTES = 4096
ETRN_STARTED = {250: "queuing started", 251: "no messages waiting",
                252: "pending messages started", 253: "messages started"}
ETRN_REFUSED = {458: "the ISP cannot queue messages for the domain now",
                459: "the ISP does not hold mail for this domain (node not allowed)"}

SERVER_FIX = ("Set ISP Mail Server (Email Server > Settings) to the host (or host:port) the "
              "ISP gives.")


class _Refused(Exception):
    """A step the mailbox server refused; the message says which."""


def _server(context: Context, default_port: int) -> tuple[str, int]:
    address = context["email.isp_server"]
    if not address:
        raise Invalid("no ISP Mail Server is set")
    host, port = split_host_port(address, default_port)
    return host, port


def _tls(context: Context) -> ssl.SSLContext:
    tls = ssl.create_default_context(cafile=context.cafile)
    if not context["email.isp_tls_verify"]:
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    return tls


def isp_mailbox(context: Context) -> Outcome:
    protocol, security = context["email.isp_protocol"], context["email.isp_tls"]
    try:
        host, port = _server(context, MAILBOX_PORTS[(protocol, security)])
    except Invalid as error:
        return failed(f"ISP Mail Server: {error}", SERVER_FIX)
    multidrop = context["email.server_type"] == "multidrop"
    login = context["email.isp_login"] if multidrop else ""
    if multidrop and not login:
        return failed("no Login Name is set for the ISP mailbox",
                      "Set the Login Name and Password the ISP gave for the domain's mailbox "
                      "(Email Server > Settings).")
    where = f"{protocol.upper()} {host}:{port} ({_security_words(security)})"
    try:
        if protocol == "pop3":
            said, count = _pop3(context, host, port, security, login)
        else:
            said, count = _imap(context, host, port, security, login)
    except ssl.SSLCertVerificationError as error:
        return failed(f"{where}: the ISP's certificate is not trusted: {error.verify_message}",
                      "Check the ISP Mail Server name (it must match the certificate); for an "
                      "ISP with a self-signed certificate only, turn off Check the ISP's "
                      "Certificate.")
    except ssl.SSLError as error:
        return failed(f"{where}: TLS failed: {error.reason or error}",
                      "Choose the Connection Security the ISP uses: TLS from the first byte "
                      "on 995/993, STARTTLS on 110/143.")
    except _Refused as error:
        return failed(f"{where}: {error}", _refusal_fix(str(error)))
    except (OSError, EOFError, poplib.error_proto, imaplib.IMAP4.error) as error:
        return failed(f"{where}: {_text(error)}",
                      "Check the ISP Mail Server address and port, the Protocol and Connection "
                      "Security, and that no firewall blocks the box.")
    reason = f"{where}: {said}"
    if count is not None:
        reason += f"; {count} message{'s' if count != 1 else ''} waiting"
    if not multidrop:
        reason += "; each user's ISP login is checked when the Mail Server fetches it"
    if security == "none":
        return warned(reason + "; the password crosses the Internet in clear",
                      "Choose TLS or STARTTLS if the ISP offers it.")
    if not context["email.isp_tls_verify"]:
        return warned(reason + "; the ISP's certificate is not checked",
                      "Turn on Check the ISP's Certificate unless the ISP's certificate is "
                      "self-signed.")
    return passed(reason)


def _security_words(security: str) -> str:
    return {"tls": "TLS", "starttls": "STARTTLS", "none": "no TLS"}[security]


def _refusal_fix(message: str) -> str:
    if "[SYS/TEMP]" in message or "[UNAVAILABLE]" in message:
        return ("The ISP's server has a temporary problem of its own; run the diagnostics "
                "again later, and ask the ISP if it stays.")
    if "login" in message:
        return ("Correct the Login Name and Password of the ISP mailbox (Email Server > "
                "Settings).")
    return "Choose the Connection Security the ISP supports (Email Server > Settings)."


def _pop3(context, host, port, security, login) -> tuple[str, int | None]:
    if security == "tls":
        client = poplib.POP3_SSL(host, port, context=_tls(context), timeout=SOCKET_SECONDS)
    else:
        client = poplib.POP3(host, port, timeout=SOCKET_SECONDS)
    try:
        greeting = client.getwelcome().decode("utf-8", "replace")
        if security == "starttls":
            try:
                client.stls(_tls(context))
            except poplib.error_proto as error:
                raise _Refused(f"the server refuses STLS: {_text(error)}") from None
        if not login:
            return f"answers {greeting[:200]}", None
        try:
            client.user(login)
            client.pass_(context["email.isp_password"])
        except poplib.error_proto as error:
            raise _Refused(f"login as {login!r} refused: {_text(error)}") from None
        count, _size = client.stat()
        return f"logged in as {login}", count
    finally:
        try:
            client.quit()
        except (OSError, EOFError, poplib.error_proto):
            client.close()


def _imap(context, host, port, security, login) -> tuple[str, int | None]:
    if security == "tls":
        client = imaplib.IMAP4_SSL(host, port, ssl_context=_tls(context), timeout=SOCKET_SECONDS)
    else:
        client = imaplib.IMAP4(host, port, timeout=SOCKET_SECONDS)
    try:
        greeting = client.welcome.decode("utf-8", "replace")
        if security == "starttls":
            try:
                client.starttls(_tls(context))
            except imaplib.IMAP4.error as error:
                raise _Refused(f"the server refuses STARTTLS: {_text(error)}") from None
        if not login:
            return f"answers {greeting[:200]}", None
        try:
            client.login(login, context["email.isp_password"])
        except imaplib.IMAP4.error as error:
            raise _Refused(f"login as {login!r} refused: {_text(error)}") from None
        status, data = client.select("INBOX", readonly=True)
        if status != "OK":
            raise _Refused(f"the INBOX cannot be opened: {_text(data)}")
        return f"logged in as {login}", int(data[0])
    finally:
        try:
            client.logout()
        except (OSError, EOFError, imaplib.IMAP4.error):
            client.shutdown()


def etrn_reply(context: Context) -> Outcome:
    try:
        host, port = _server(context, ETRN_PORT)
    except Invalid as error:
        return failed(f"ISP Mail Server: {error}", SERVER_FIX)
    domain = context["email.domain"]
    argument = f"#{domain}" if context["email.etrn_form"] == "hash" else domain
    where = f"ETRN at {host}:{port}"
    smtp = smtplib.SMTP(local_hostname=context["system.hostname"], timeout=SOCKET_SECONDS)
    try:
        code, banner = smtp.connect(host, port)
        if code != 220:
            return failed(f"{where}: greeting {code} {_text(banner)}",
                          "The ISP's server does not take connections now; ask the ISP.")
        code, _ = smtp.ehlo()
        offered = code == 250 and smtp.has_extn("etrn")
        code, reply = smtp.docmd("ETRN", argument)
        reply = _text(reply)
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
    except (OSError, smtplib.SMTPException) as error:
        return failed(f"{where}: no connection: {_text(error)}",
                      "Check the ISP Mail Server address (the ISP's SMTP server for ETRN), and "
                      "that no firewall blocks the box.")
    finally:
        smtp.close()
    said = f"{where}: ETRN {argument} -> {code} {reply}"
    if code in ETRN_STARTED:
        return passed(f"{said} ({ETRN_STARTED[code]})")
    if code in ETRN_REFUSED:
        return failed(f"{said} ({ETRN_REFUSED[code]})",
                      f"Ask the ISP to hold {domain}'s mail for ETRN, and check the ETRN "
                      "Request form (domain or #domain) the ISP expects.")
    if not offered:
        return failed(f"{said}; the server does not offer ETRN",
                      "The ISP's server does not support ETRN: check the ISP Mail Server "
                      "address, or use the server type the ISP supports.")
    return failed(said, "Ask the ISP which ETRN form it expects (ETRN Request).")


def finger_reply(context: Context) -> Outcome:
    try:
        host, port = _server(context, FINGER_PORT)
    except Invalid as error:
        return failed(f"ISP Mail Server: {error}", SERVER_FIX)
    domain = context["email.domain"]
    where = f"finger {domain}@{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=SOCKET_SECONDS) as sock:
            sock.sendall(f"{domain}\r\n".encode())
            reply = b""
            while len(reply) < FINGER_REPLY_BYTES:
                chunk = sock.recv(FINGER_REPLY_BYTES - len(reply))
                if not chunk:
                    break
                reply += chunk
    except OSError as error:
        return failed(f"{where}: {_text(error)}",
                      "Check the ISP Mail Server address (the ISP's finger host), and that no "
                      "firewall blocks TCP port 79.")
    text = " ".join(reply.decode("utf-8", "replace").split())
    if not text:
        return warned(f"{where}: the ISP answered with nothing",
                      "The finger service ran but said nothing; ask the ISP whether it "
                      "releases mail for this domain.")
    return passed(f"{where}: {text[:200]}")


def _text(value) -> str:
    if isinstance(value, socket.timeout):
        return f"timed out after {SOCKET_SECONDS:g} s"
    if isinstance(value, (list, tuple)):
        value = b" ".join(v for v in value if isinstance(v, bytes)) or str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, Exception) and value.args and isinstance(value.args[0], bytes):
        value = value.args[0].decode("utf-8", "replace")
    elif isinstance(value, Exception):
        value = getattr(value, "strerror", None) or str(value) or value.__class__.__name__
    return " ".join(str(value).split())
