"""Every core setting, declared once: type, default (the manuals' defaults),
label and menu path. The CLI, the web forms and the daemons all read this."""

from __future__ import annotations

from .types import (UNLIMITED, AddressList, AddressPatterns, AdminSources, Bool, Choice, Days,
                    Domain, Email, HostPort, Integer, LdapServer, Networks, Score, Secret,
                    Setting, Text, TimeRange, TimeZone)

SETTINGS_MENU = "Email Server > Settings"
ADVANCED_MENU = "Email Server > Settings > Advanced"
SCHEDULING_MENU = "Email Server > Scheduling"
QUEUE_MENU = "Email Server > Messages in Queue"
QUARANTINE_MENU = "Email Server > Quarantine"
ADDRESS_VERIFICATION_MENU = "Email Server > Address Verification"
SYSTEM_MENU = "System > Network"
# The Anti-Spam SoftPak's page; until it is installed no page shows these.
ANTISPAM_MENU = "Anti-Spam > Settings"

SERVER_TYPES = (
    ("standalone", "Stand-Alone"),
    ("relay", "Relay"),
    ("multidrop", "Multi-drop"),
    ("mirrored", "Mirrored"),
    ("etrn", "Enhanced SMTP Turn Delivery"),
    ("mailbag", "SMTP Mail-bagging"),
)

# The types that fetch mail from the ISP mailbox (POP3 or IMAP), and those
# that ask the ISP to deliver what it holds (ETRN, finger).
RETRIEVING_SERVER_TYPES = ("multidrop", "mirrored")
TRIGGERING_SERVER_TYPES = ("etrn", "mailbag")
ISP_SERVER_TYPES = RETRIEVING_SERVER_TYPES + TRIGGERING_SERVER_TYPES
ISP_PROTOCOLS = (("pop3", "POP3"), ("imap", "IMAP"))
ISP_TLS = (("tls", "TLS from the first byte (POP3S 995, IMAPS 993)"),
           ("starttls", "STARTTLS / STLS on the plain port"),
           ("none", "None (the password crosses the Internet in clear)"))
ENVELOPE_HEADERS = (("delivered-to", "Delivered-To"), ("x-original-to", "X-Original-To"),
                    ("x-envelope-to", "X-Envelope-To"), ("envelope-to", "Envelope-To"),
                    ("received", "Received: ... for <...> (single-recipient mail only)"),
                    ("auto", "Auto-detect (a probe message through the ISP)"))
ETRN_FORMS = (("domain", "ETRN yourdomain"), ("hash", "ETRN #yourdomain"))

LDAP_REFRESH_INTERVALS = (
    ("15", "Every 15 minutes"),
    ("30", "Every 30 minutes"),
    ("60", "Every hour"),
    ("240", "Every 4 hours"),
    ("720", "Every 12 hours"),
    ("1440", "Every day"),
)
LDAP_SECURITY = (
    ("starttls", "StartTLS"),
    ("ldaps", "LDAPS (TLS from the first byte)"),
    ("none", "None (the password travels in clear)"),
)

SCHEDULE_INTERVALS = (
    ("5", "Every 5 minutes"),
    ("10", "Every 10 minutes"),
    ("15", "Every 15 minutes"),
    ("30", "Every 30 minutes"),
    ("60", "Every hour"),
    ("120", "Every 2 hours"),
    ("240", "Every 4 hours"),
    ("480", "Every 8 hours"),
    ("never", "Never"),
)


def _star_networks_warning(value):
    if value == "*":
        return ("Trusted Networks is '*': every host on the Internet may relay "
                "mail through this box. This is not recommended.")
    return None


def _relay_only(*types):
    return ("email.server_type", types)


CORE_SETTINGS = [
    # Email Server > Settings
    Setting("email.server_enabled", Bool(), True, "Server Enabled", SETTINGS_MENU,
            "Accept and deliver mail. When off, the SMTP ports answer 421."),
    Setting("email.server_type", Choice(SERVER_TYPES), "relay",
            "Server Type", SETTINGS_MENU,
            "How the box handles mail. All types but Relay need the Mail Server SoftPak. "
            "Multi-drop and Mirrored fetch the office's mail from the ISP's mailbox; Enhanced "
            "SMTP Turn Delivery and SMTP Mail-bagging ask the ISP to deliver what it holds, on "
            "the Scheduling page's intervals.",
            requires={v: "mailserver" for v, _ in SERVER_TYPES if v != "relay"}),
    Setting("email.isp_server", HostPort(), "", "ISP Mail Server", SETTINGS_MENU,
            "The ISP's mail server (host or host:port): the POP3/IMAP server for Multi-drop and "
            "Mirrored, the SMTP server for ETRN, the finger host for Mail-bagging.",
            visible_when=_relay_only(*ISP_SERVER_TYPES)),
    Setting("email.isp_protocol", Choice(ISP_PROTOCOLS), "pop3", "Protocol", SETTINGS_MENU,
            visible_when=_relay_only(*RETRIEVING_SERVER_TYPES)),
    Setting("email.isp_tls", Choice(ISP_TLS), "tls", "Connection Security", SETTINGS_MENU,
            visible_when=_relay_only(*RETRIEVING_SERVER_TYPES)),
    Setting("email.isp_tls_verify", Bool(), True, "Check the ISP's Certificate", SETTINGS_MENU,
            "Off only for an ISP with a self-signed certificate: anyone on the path could then "
            "read the password.", visible_when=_relay_only(*RETRIEVING_SERVER_TYPES)),
    Setting("email.isp_login", Text(), "", "Login Name", SETTINGS_MENU,
            "The ISP mailbox that holds all of the domain's mail (Multi-drop).",
            visible_when=_relay_only("multidrop")),
    Setting("email.isp_password", Secret(), "", "Password", SETTINGS_MENU,
            visible_when=_relay_only("multidrop")),
    Setting("email.envelope_header", Choice(ENVELOPE_HEADERS), "delivered-to", "Envelope Header",
            SETTINGS_MENU,
            "The header the ISP adds naming each message's envelope recipient. Only the one the "
            "ISP added (the topmost) counts, never one further down that a sender could forge.",
            visible_when=_relay_only("multidrop")),
    Setting("email.etrn_form", Choice(ETRN_FORMS), "domain", "ETRN Request", SETTINGS_MENU,
            "How the ISP wants the domain named in the ETRN command.",
            visible_when=_relay_only("etrn")),
    Setting("email.domain", Domain(allow_star=True), "example.com", "Domain Name", SETTINGS_MENU,
            "The office's mail domain, e.g. mydomain.com; * matches every domain (relay mode only)."),
    Setting("email.trusted_networks", Networks(), "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
            "Trusted Networks", SETTINGS_MENU,
            "Hosts and networks allowed to relay mail to other domains (10.10.1.2, 10.10.1.0/24). "
            "* allows everyone and is not recommended.",
            warn=_star_networks_warning),
    Setting("email.mail_server_address", HostPort(), "", "Mail Server Address", SETTINGS_MENU,
            "The office's SMTP mail server on the LAN (host or host:port); relay mode delivers "
            "incoming mail there.", visible_when=_relay_only("relay")),
    Setting("email.mail_server_auth", Bool(), False, "Mail Server Requires Authentication",
            SETTINGS_MENU, visible_when=_relay_only("relay")),
    Setting("email.mail_server_login", Text(), "", "Login Name", SETTINGS_MENU,
            visible_when=_relay_only("relay")),
    Setting("email.mail_server_password", Secret(), "", "Password", SETTINGS_MENU,
            visible_when=_relay_only("relay")),
    Setting("email.relay_server_address", HostPort(), "", "Relay Server Address", SETTINGS_MENU,
            "Your ISP's outgoing SMTP server (host or host:port). Empty: deliver directly "
            "to each domain's MX."),
    Setting("email.relay_server_auth", Bool(), False, "Relay Server Requires Authentication",
            SETTINGS_MENU),
    Setting("email.relay_server_login", Text(), "", "Login Name", SETTINGS_MENU),
    Setting("email.relay_server_password", Secret(), "", "Password", SETTINGS_MENU),

    # Email Server > Settings > Advanced
    Setting("email.forward_undeliverable_to_admin", Bool(), False,
            "Forward copies of undeliverable messages to administrator", ADVANCED_MENU),
    Setting("email.admin_address", Email(), "", "Administrator Address", ADVANCED_MENU,
            "Where copies of undeliverable messages go; empty means postmaster@<Domain Name>."),
    Setting("email.allow_client_auth", Bool(), True, "Allow Client Authentication", ADVANCED_MENU,
            "Let remote clients relay after authenticating with a product account."),
    Setting("email.allow_nonstandard_helo", Bool(), False, "Allow Non-standard HELO Names",
            ADVANCED_MENU, "Accept HELO names with underscores, from servers behind the box."),
    Setting("email.max_message_size_mb", Integer(1, 2048, unlimited=True), 10,
            "Maximum Message Size (MB)", ADVANCED_MENU),
    Setting("email.max_connections_per_host", Integer(1, 10000, unlimited=True), 5,
            "Maximum Connections Per Host", ADVANCED_MENU),
    Setting("email.max_connections", Integer(1, 100000, unlimited=True), 100,
            "Maximum Connections", ADVANCED_MENU,
            "Simultaneous SMTP connections from all hosts together; more are answered 421."),
    Setting("email.max_line_length", Integer(1000, 1_000_000, unlimited=True), 1000,
            "Maximum Line Length (octets)", ADVANCED_MENU,
            "Longest line of a message, CRLF included (RFC 5321: 1000). Some clients send "
            "longer lines; raise this (up to 1000000) or type unlimited to accept them."),
    Setting("email.check_duplicate_messages", Bool(), False,
            "Check for duplicate messages due to client timeouts", ADVANCED_MENU,
            "Clients that give up after one minute resend; accept the resend but keep one copy."),
    Setting("email.allow_offsite_pop_imap", Bool(), False, "Allow off-site access to POP/IMAP",
            ADVANCED_MENU),
    Setting("email.send_incoming_to", Email(), "", "Send Incoming Email To (optional)",
            ADVANCED_MENU, "Deliver all incoming mail for the Domain Name to this address."),
    Setting("email.forward_to_incoming_smtp", Bool(), False, "Forward to Incoming SMTP Server",
            ADVANCED_MENU, "Hand that mail to the Mail Server Address rather than routing it by MX."),
    Setting("email.timeout_connect_min", Integer(1, 60), 5, "TCP Connect (minutes)", ADVANCED_MENU),
    Setting("email.timeout_command_min", Integer(1, 60), 5, "Command Inactivity (minutes)",
            ADVANCED_MENU),
    Setting("email.timeout_datablock_min", Integer(1, 60), 5, "Data Block Transmission (minutes)",
            ADVANCED_MENU),
    Setting("email.timeout_termination_min", Integer(1, 60), 10, "Message Termination (minutes)",
            ADVANCED_MENU),
    Setting("email.max_retrieve_per_session", Integer(1, 100000, unlimited=True), UNLIMITED,
            "Maximum messages to retrieve per session", ADVANCED_MENU,
            "Multi-drop and mirrored systems only: at most this many messages per mailbox each "
            "time the box fetches; the rest wait for the next time.",
            visible_when=_relay_only("multidrop", "mirrored")),

    # Email Server > Address Verification (the Mail Server SoftPak adds Send unaddressable mail)
    Setting("email.verify_sender_local", Bool(), False, "Verify Sender Using Local Domain Exists",
            ADDRESS_VERIFICATION_MENU,
            "Mail from outside (not authenticated, not from Trusted Networks) whose sender claims "
            "one of this box's domains must name an existing user, alias or list (in Relay mode: "
            "an address the recipient verification below knows). Stops mail that pretends to "
            "come from a colleague."),
    Setting("email.verify_sender_callout", Bool(), False, "Verify Sender Email Account Exists",
            ADDRESS_VERIFICATION_MENU,
            "Ask the sender domain's mail server whether it would accept mail for the sender "
            "(MAIL FROM:<>, RCPT TO, QUIT; no message is sent). Answers are remembered: 31 days "
            "when the address exists, 3 days when it does not. Some sites list servers that do "
            "this on blocklists."),
    Setting("email.spf", Bool(), False, "Enable SPF", ADDRESS_VERIFICATION_MENU,
            "Check the sender domain's SPF record (RFC 7208): a fail is refused (550 5.7.23), a "
            "DNS error is deferred (451 4.7.24), anything else is noted in the headers."),
    Setting("email.spf_bypass", Bool(), True,
            "Ignore Authenticated Clients, Trusted Network and my MX Servers",
            ADDRESS_VERIFICATION_MENU,
            "No SPF check for authenticated clients, Trusted Networks and the Domain Name's own "
            "MX hosts (found through DNS): a backup MX that forwards here would fail SPF.",
            visible_when=("email.spf", (True,))),
    Setting("email.deny_invalid_headers", Bool(), False, "Deny Email with Invalid Headers",
            ADDRESS_VERIFICATION_MENU,
            "Refuse (550 5.6.0) a message whose Sender, From, Reply-To, To, Cc or Bcc header is "
            "not a valid address list, which has more than one From or Sender, or no From."),
    Setting("email.verify_recipient_smtp", Bool(), False,
            "Verify Recipient Email Account Exists Using Incoming SMTP Server",
            ADDRESS_VERIFICATION_MENU,
            "Relay mode: ask the Mail Server Address at RCPT time whether it accepts the "
            "recipient, so unknown users are refused before the message is taken (no bounces "
            "later). Useless when the internal server accepts every address (a catch-all): "
            "the page then says so.", visible_when=_relay_only("relay")),
    Setting("email.verify_recipient_ldap", Bool(), False,
            "Verify Recipient Email Account Exists Using LDAP", ADDRESS_VERIFICATION_MENU,
            "Relay mode: refuse recipients that are not in the address list read from an LDAP "
            "server (Active Directory's mail and proxyAddresses).",
            visible_when=_relay_only("relay")),
    Setting("email.ldap_domain", Text(), "", "Domain", ADDRESS_VERIFICATION_MENU,
            "Where the addresses are: a base DN (ou=people,dc=example,dc=com) or an Active "
            "Directory domain (example.com, read as dc=example,dc=com).",
            visible_when=_relay_only("relay")),
    Setting("email.ldap_server", LdapServer(), "", "LDAP Server", ADDRESS_VERIFICATION_MENU,
            "host or host:port (389, or 636 for LDAPS); ldaps://host also chooses LDAPS.",
            visible_when=_relay_only("relay")),
    Setting("email.ldap_security", Choice(LDAP_SECURITY), "starttls", "Connection Security",
            ADDRESS_VERIFICATION_MENU,
            "StartTLS or LDAPS keep the password and the address list off the wire.",
            visible_when=_relay_only("relay")),
    Setting("email.ldap_auth", Bool(), False, "Authentication Required", ADDRESS_VERIFICATION_MENU,
            "Active Directory usually needs a user name and password; NT4 servers without it "
            "usually do not.", visible_when=_relay_only("relay")),
    Setting("email.ldap_login", Text(), "", "Login Name", ADDRESS_VERIFICATION_MENU,
            "A bind DN, or for Active Directory user@domain.", visible_when=_relay_only("relay")),
    Setting("email.ldap_password", Secret(), "", "Password", ADDRESS_VERIFICATION_MENU,
            visible_when=_relay_only("relay")),
    Setting("email.ldap_refresh", Choice(LDAP_REFRESH_INTERVALS), "60", "Refresh interval",
            ADDRESS_VERIFICATION_MENU, "How often the address list is read again from the "
            "LDAP server. Update Now reads it at once.", visible_when=_relay_only("relay")),
    Setting("email.internal_addresses", AddressPatterns(), "", "Email Addresses on Internal Server",
            ADDRESS_VERIFICATION_MENU,
            "Relay mode: the addresses the internal server has, one per line; *@example.com "
            "stands for every address at a domain.", visible_when=_relay_only("relay")),

    # Spam score thresholds: what a message's total score leads to at the end
    # of DATA. Off until the Anti-Spam SoftPak sets them.
    Setting("email.spam_tag_score", Score(), None, "Tag Score", ANTISPAM_MENU,
            "From this score on, [SPAM] is added to the subject and X-Spam headers are added. "
            "Set by the Anti-Spam SoftPak."),
    Setting("email.spam_quarantine_score", Score(), None, "Quarantine Score", ANTISPAM_MENU,
            "From this score on, the message is held instead of delivered. "
            "Set by the Anti-Spam SoftPak."),
    Setting("email.spam_reject_score", Score(), None, "Reject Score", ANTISPAM_MENU,
            "From this score on, the message is refused with 550 5.7.1. "
            "Set by the Anti-Spam SoftPak."),

    # Email Server > Scheduling
    Setting("email.business_week", Days(), "mon,tue,wed,thu,fri", "Business Week", SCHEDULING_MENU),
    Setting("email.business_day", TimeRange(), "08:00-17:00", "Business Day", SCHEDULING_MENU),
    Setting("email.business_schedule", Choice(SCHEDULE_INTERVALS), "15", "Business Schedule",
            SCHEDULING_MENU),
    Setting("email.evening_schedule", Choice(SCHEDULE_INTERVALS), "60", "Evening Schedule",
            SCHEDULING_MENU),
    Setting("email.weekend_schedule", Choice(SCHEDULE_INTERVALS), "240", "Weekend Schedule",
            SCHEDULING_MENU),
    Setting("email.send_mode", Choice((("immediately", "Send Outgoing Internet EMail Immediately"),
                                       ("same_time", "Send/Retrieve Internet EMail at Same Time"))),
            "immediately", "Sending", SCHEDULING_MENU),

    # Email Server > Messages in Queue
    Setting("email.quarantine_days", Integer(1, 365), 30, "Keep Quarantined Messages (days)",
            QUARANTINE_MENU,
            "Messages held in the quarantine longer than this are deleted."),
    Setting("email.max_queue_lifetime_days", Integer(1, 60), 5, "Maximum Queue Lifetime (days)",
            QUEUE_MENU, "Undeliverable mail is returned to its sender after this long."),
    Setting("email.retry_minimum_seconds", Integer(1, 86400), 300, "First Retry After (seconds)",
            QUEUE_MENU, "Mail that could not be delivered is retried after this long, then "
                        "after twice as long each time, up to the maximum below."),
    Setting("email.retry_maximum_seconds", Integer(1, 86400), 4000, "Longest Retry Interval (seconds)",
            QUEUE_MENU),

    # System > Network: where the box asks DNS (tests point it at a loopback server)
    Setting("dns.nameservers", AddressList(), "", "DNS Servers", SYSTEM_MENU,
            "Comma-separated resolver addresses; empty uses the system resolver."),
    Setting("dns.port", Integer(1, 65535), 53, "DNS Port", SYSTEM_MENU),
    Setting("system.hostname", Text(optional=False), "gatebox.localdomain", "Host Name", SYSTEM_MENU,
            "The name the box uses in its SMTP banner and HELO."),
    Setting("system.timezone", TimeZone(), "UTC", "Time Zone", SYSTEM_MENU,
            "Local time for the delivery schedule, the logs and the dashboard."),
    Setting("system.admin_allow_from", AdminSources(), "trusted", "Allow Administration From",
            SYSTEM_MENU,
            "Who may open this web admin: 'trusted' (the Trusted Networks of Email Server > "
            "Settings), 'any' (the whole Internet: not recommended), or a comma-separated list "
            "of addresses and networks. Every page checks it, sign-in and setup included."),
]
