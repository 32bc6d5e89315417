"""The Mail Server SoftPak.

Its gate is in the core schema: `email.server_type` marks every type but
Relay with requires="mailserver", so the settings store refuses them unless
this SoftPak is active. When the license lapses the stored server type is
left as it is; services ask `is_licensed` and fall back to accepting and
keeping mail until a key brings the feature back: the local delivery agent
and routes vanish with the license, so mail for local users waits in the
queue, and Dovecot gives way to a stand-in that tells clients why.

Stand-alone mode: local domains, mailboxes (maildir), aliases, distribution
lists, forwarders, auto-responders, catch-all, archive copies (local_delivery,
expansion, routing), groups and their Email permission (groups), POP3/IMAP4
through a private Dovecot (dovecot, checkpassword, access), the Users &
Groups commands (cli) and pages (web)."""

from __future__ import annotations

from firmware.plugins import hookimpl

SOFTPAK_ID = "mailserver"
GATED_SERVER_TYPES = ("standalone", "multidrop", "mirrored", "etrn", "mailbag")


def is_licensed(store, now=None) -> bool:
    from firmware.licensing import is_active
    return is_active(store, SOFTPAK_ID, now)


def server_type_runs(store, server_type: str, now=None) -> bool:
    """Whether a stored server type may run now (Relay always may)."""
    return server_type not in GATED_SERVER_TYPES or is_licensed(store, now)


@hookimpl
def gatebox_settings():
    from .settings import SETTINGS
    return SETTINGS


@hookimpl
def gatebox_migrations():
    from .tables import MIGRATIONS
    return MIGRATIONS


@hookimpl
def gatebox_policy_checks(store):
    from .routing import sender_permission_check, unaddressable_check
    return [unaddressable_check(store), sender_permission_check(store)]


@hookimpl
def gatebox_routes():
    from .routing import route_local
    return [route_local]


@hookimpl
def gatebox_delivery_agents(context):
    from .local_delivery import LocalDelivery
    return {"local": LocalDelivery(context)}


def _mailbox_ports(store, options) -> tuple[int, int, int]:
    """(POP3, IMAP4, IMAP4 over SSL) ports to serve; none in Relay mode, where
    the mailboxes are on the LAN's own server. A port given to `gatebox run`
    wins over the setting."""
    from . import settings as keys
    if store.get("email.server_type") not in GATED_SERVER_TYPES:
        return 0, 0, 0
    return tuple(store.get(key) if options.get(option) is None else options[option]
                 for option, key in (("pop3_port", keys.POP3_PORT), ("imap_port", keys.IMAP_PORT),
                                     ("imaps_port", keys.IMAPS_PORT)))


@hookimpl
def gatebox_services(store, options):
    from .dovecot import DovecotService
    pop3, imap, imaps = _mailbox_ports(store, options)
    if not (pop3 or imap or imaps):
        return []
    return [DovecotService(options["data_dir"], bind=options["bind"], pop3_port=pop3,
                           imap_port=imap, imaps_port=imaps, hostname=store.get("system.hostname"))]


@hookimpl
def gatebox_unlicensed_services(store, options):
    from .standin import RefusalService
    # No stand-in on the IMAP4-over-SSL port: its refusal would need TLS first,
    # and a closed port tells a mail program as much.
    pop3, imap, _ = _mailbox_ports(store, options)
    if not (pop3 or imap):
        return []
    return [RefusalService(bind=options["bind"], pop3_port=pop3, imap_port=imap)]


@hookimpl
def gatebox_menu_pages():
    from .web import menu_pages
    return [{"menu": "Email Server > Settings", "softpak": SOFTPAK_ID,
             "title": "Server Type (Stand-Alone, Multi-drop, Mirrored, ETRN, Mail-bagging)"}
            ] + menu_pages(SOFTPAK_ID)
