"""The Anti-Spam SoftPak's hook implementations (manifest.toml: hooks)."""

from __future__ import annotations

from firmware.plugins import hookimpl

from . import access, dnsbl, greylist, lists, rdns
from .cli import COMMANDS
from .settings import SETTINGS
from .tables import MIGRATIONS


@hookimpl
def gatebox_settings():
    return SETTINGS


@hookimpl
def gatebox_migrations():
    return MIGRATIONS


@hookimpl
def gatebox_cli_commands():
    return COMMANDS


@hookimpl
def gatebox_policy_checks(store):
    # In the chain's order: blocked IPs at connect; at RCPT the lists first
    # (a whitelisted client skips the layers after them), then DNSBL, reverse
    # DNS and the greylist.
    return (access.policy_checks(store) + lists.policy_checks(store) +
            dnsbl.policy_checks(store) + rdns.policy_checks(store) +
            greylist.policy_checks(store))


@hookimpl
def gatebox_dashboard_notes(store):
    notes = []
    for zone in dnsbl.needs_attention(store):
        if zone.healthy is False:
            notes.append(f"Anti-Spam: the DNS blocklist {zone.zone} failed its test "
                         f"({zone.detail}) and decides nothing until it passes again.")
        if zone.warning:
            notes.append(f"Anti-Spam: the DNS blocklist {zone.zone}: {zone.warning}")
    return notes


@hookimpl
def gatebox_menu_pages():
    from .web import menu_pages
    return menu_pages()
