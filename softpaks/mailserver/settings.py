"""The Mail Server SoftPak's settings, declared once like the core ones.
Declared whether or not the SoftPak is licensed, so values outlive a lapse."""

from __future__ import annotations

from firmware.config.types import Bool, Choice, Domain, Integer, Invalid, Setting, Text

ADDRESS_VERIFICATION_MENU = "Email Server > Address Verification"
DOMAINS_MENU = "Email Server > Settings > Domains"
ARCHIVAL_MENU = "Email Server > Archival"
RESPONDERS_MENU = "Users & Groups > Auto-Responders"
CLIENT_ACCESS_MENU = "Email Server > Settings > Advanced"

UNADDRESSABLE = "mailserver.unaddressable"
UNADDRESSABLE_USER = "mailserver.unaddressable_user"
LOCAL_DOMAINS = "mailserver.local_domains"
ARCHIVE = "mailserver.archive"
RESPONDER_DAYS = "mailserver.responder_days"
POP3_PORT = "mailserver.pop3_port"
IMAP_PORT = "mailserver.imap_port"
IMAPS_PORT = "mailserver.imaps_port"


class DomainList:
    """Comma-separated domain names (the further local domains)."""
    rule = "must be a comma-separated list of domain names such as example.net"

    def parse(self, raw):
        items = [i.strip() for i in str(raw or "").replace(" ", ",").split(",") if i.strip()]
        try:
            parsed = [Domain().parse(i) for i in items]
        except Invalid:
            raise Invalid(self.rule) from None
        return ",".join(dict.fromkeys(parsed))

    def render(self, value) -> str:
        return value


SETTINGS = [
    Setting(UNADDRESSABLE, Choice((("reject", "Reject"), ("user", "User"))), "reject",
            "Send unaddressable mail", ADDRESS_VERIFICATION_MENU,
            "Stand-alone mode: mail for a local domain that no user, alias, distribution list "
            "or forwarder answers to is rejected at RCPT time (550), or delivered to one user.",
            visible_when=("email.server_type", ("standalone",))),
    Setting(UNADDRESSABLE_USER, Text(max_length=64), "", "User", ADDRESS_VERIFICATION_MENU,
            "The user who receives unaddressable mail: one of the users with Email permission "
            "(Users & Groups).",
            visible_when=(UNADDRESSABLE, ("user",))),
    Setting(LOCAL_DOMAINS, DomainList(), "", "Further Local Domains", DOMAINS_MENU,
            "Stand-alone mode: domains besides the Domain Name whose mail is delivered to "
            "the mailboxes on this box (user@any-local-domain reaches the same user)."),
    Setting(ARCHIVE, Bool(), False, "Archive all messages", ARCHIVAL_MENU,
            "Keep a copy of every message delivered to a user in the mailbox archive-<user>."),
    Setting(RESPONDER_DAYS, Integer(1, 365), 7, "Reply to the same sender at most every (days)",
            RESPONDERS_MENU, "An auto-responder answers each sender once in this many days "
                             "(RFC 3834)."),
    Setting(POP3_PORT, Integer(0, 65535), 110, "POP3 Port", CLIENT_ACCESS_MENU,
            "0 turns POP3 off."),
    Setting(IMAP_PORT, Integer(0, 65535), 143, "IMAP4 Port", CLIENT_ACCESS_MENU,
            "0 turns IMAP4 off."),
    Setting(IMAPS_PORT, Integer(0, 65535), 993, "IMAP4 over SSL Port", CLIENT_ACCESS_MENU,
            "IMAP4 with TLS from the first byte, for mail programs set to SSL/TLS. 0 turns it off."),
]
