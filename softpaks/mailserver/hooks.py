"""The Mail Server SoftPak's hook implementations (manifest.toml: hooks)."""

from __future__ import annotations

from firmware import accounts
from firmware.mail import addresses
from firmware.plugins import hookimpl

from . import directory, settings as keys
from .cli import MAILSERVER_COMMANDS
from .dovecot import DovecotService
from .groups import has_email
from .license import GATED_SERVER_TYPES, SOFTPAK_ID
from .retrieval import status as retrieval_status
from .retrieval.runner import RetrievalRunner
from .local_delivery import LocalDelivery
from .retrieval import isp_accounts
from .routing import (applies, is_addressable, is_local_address, route_local,
                      sender_permission_check, unaddressable_check)
from .standin import RefusalService
from .tables import MIGRATIONS


@hookimpl
def gatebox_settings():
    return keys.SETTINGS


@hookimpl
def gatebox_local_domains(settings):
    return directory.local_domains(settings)[1:]


@hookimpl
def gatebox_migrations():
    return MIGRATIONS


@hookimpl
def gatebox_cli_commands():
    return MAILSERVER_COMMANDS


@hookimpl
def gatebox_policy_checks(store):
    return [unaddressable_check(store), sender_permission_check(store)]


@hookimpl
def gatebox_address_exists(store, settings, address):
    if not applies(settings) or not is_local_address(address, settings):
        return None
    return is_addressable(store, addresses.parse(address).local)


@hookimpl
def gatebox_setting_choices(store, key):
    if key != keys.UNADDRESSABLE_USER:
        return None
    return [(u["name"], u["name"]) for u in accounts.list_users(store)
            if not u["is_admin"] and has_email(store, u["name"])]


@hookimpl
def gatebox_users_page_columns(store):
    # Mirrored: each user's own ISP mailbox. Only whether a password is
    # stored leaves the database, never the password.
    logins = {item.name: item for item in isp_accounts.isp_logins(store)}
    return [{"heading": "ISP Login (Mirrored)", "endpoint": "mailserver.isp_login",
             "fields": [{"name": "isp_login", "label": "ISP Login", "type": "text"},
                        {"name": "isp_password", "label": "ISP Password", "type": "password"}],
             "values": {name: {"isp_login": item.login} for name, item in logins.items()},
             "notes": {name: "password stored" if item.password_set else "no password"
                       for name, item in logins.items()},
             "clear": "Clear",
             "hint": "" if store.get("email.server_type") == "mirrored" else
                     "Used when the Server Type is Mirrored (Email Server: Settings)."}]


@hookimpl
def gatebox_routes():
    return [route_local]


@hookimpl
def gatebox_delivery_agents(context):
    return {"local": LocalDelivery(context)}


def _mailbox_ports(store, options) -> tuple[int, int, int]:
    """(POP3, IMAP4, IMAP4 over SSL) ports to serve; none in Relay mode, where
    the mailboxes are on the LAN's own server. A port given to `gatebox run`
    wins over the setting."""
    if store.get("email.server_type") not in GATED_SERVER_TYPES:
        return 0, 0, 0
    return tuple(store.get(key) if options.get(option) is None else options[option]
                 for option, key in (("pop3_port", keys.POP3_PORT), ("imap_port", keys.IMAP_PORT),
                                     ("imaps_port", keys.IMAPS_PORT)))


@hookimpl
def gatebox_services(store, options):
    pop3, imap, imaps = _mailbox_ports(store, options)
    services = []
    if pop3 or imap or imaps:
        services.append(DovecotService(options["data_dir"], bind=options["bind"], pop3_port=pop3,
                                       imap_port=imap, imaps_port=imaps,
                                       hostname=store.get("system.hostname")))
    # Retrieval does not depend on POP3/IMAP being served (its Retrieve now
    # would wait in vain); only Relay fetches nothing.
    if store.get("email.server_type") in GATED_SERVER_TYPES:
        services.append(RetrievalRunner(options["data_dir"]))
    return services


@hookimpl
def gatebox_status_panels(store, page):
    return retrieval_status.panels(store, page)


@hookimpl
def gatebox_unlicensed_services(store, options):
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
