"""Which checks a box needs, by its server type: every box asks DNS and has
a certificate; Relay hands local mail to the LAN server; mail leaves through
the Relay Server when one is set; Multi-drop and Mirrored log in to the ISP's
mailbox; ETRN and Mail-bagging ask the ISP to deliver."""

from __future__ import annotations

from firmware.mail import server_type

from . import certificate_check, dns_checks, isp_checks, smtp_checks
from .result import Check, Context

DNS_LIMIT = 8.0
SERVER_LIMIT = 15.0

COMMON = (
    Check("resolver", "DNS resolver answers", dns_checks.resolver_answers, DNS_LIMIT),
    Check("dns_mx", "MX of the Domain Name", dns_checks.domain_mx, DNS_LIMIT),
    Check("dns_mx_hosts", "A records of the MX hosts", dns_checks.mx_addresses, DNS_LIMIT * 2),
    Check("dns_ptr", "PTR of the box's public address", dns_checks.public_ptr, DNS_LIMIT * 2),
    Check("dns_spf", "SPF record of the Domain Name", dns_checks.spf_record, DNS_LIMIT),
    Check("certificate", "The box's certificate", certificate_check.box_certificate, 5.0),
    Check("relay_smtp", "Relay Server (ISP): SMTP and authentication", smtp_checks.relay_server,
          SERVER_LIMIT),
)
LAN_SERVER = Check("lan_smtp", "Mail Server (LAN): SMTP and authentication",
                   smtp_checks.lan_server, SERVER_LIMIT)
ISP_MAILBOX = Check("isp_mailbox", "ISP mailbox: login and messages waiting",
                    isp_checks.isp_mailbox, SERVER_LIMIT)
ETRN = Check("etrn", "ETRN reply of the ISP", isp_checks.etrn_reply, SERVER_LIMIT)
FINGER = Check("finger", "Finger reply of the ISP (Mail-bagging)", isp_checks.finger_reply,
               SERVER_LIMIT)


def plan(context: Context) -> list[Check]:
    checks = list(COMMON)
    kind = server_type.in_effect(context.settings)
    if kind == "relay":
        checks.append(LAN_SERVER)
    if server_type.retrieves(context.settings):
        checks.append(ISP_MAILBOX)
    if kind == "etrn":
        checks.append(ETRN)
    if kind == "mailbag":
        checks.append(FINGER)
    return checks
