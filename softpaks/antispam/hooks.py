"""The Anti-Spam SoftPak's hook implementations (manifest.toml: hooks).

Part 1 (the connection and envelope layers) is wired by name below. Part 2's
layers are modules of their own, each a "part" that may define any of:
SETTINGS, MIGRATIONS, COMMANDS (click commands under `gatebox antispam`),
policy_checks(store), signers(store), message_actions(store),
on_released(store, item, message, actor), dovecot_settings(store, data_dir),
services(store, options), dashboard_notes(store), PUBLIC_ENDPOINTS."""

from __future__ import annotations

import logging

from firmware.plugins import hookimpl

from . import access, authentication, bayes, content_filter, dnsbl, digest, greylist, lists, rdns, rules
from .cli import COMMANDS, antispam
from .settings import SETTINGS
from .tables import MIGRATIONS

log = logging.getLogger("gatebox.antispam")

# In the data stage's order of their checks: the content filter's settings
# for the recipients first, then the rules, Bayes, and DKIM/DMARC/ARC; the
# digest has no check.
PARTS = (content_filter, rules, bayes, authentication, digest)


def _each(name: str, *args) -> list:
    found = []
    for part in PARTS:
        value = getattr(part, name, None)
        if value is None:
            continue
        found += list(value(*args) if callable(value) else value)
    return found


for _command in _each("COMMANDS"):
    antispam.add_command(_command)


@hookimpl
def gatebox_settings():
    return SETTINGS + _each("SETTINGS")


@hookimpl
def gatebox_migrations():
    return sorted(MIGRATIONS + _each("MIGRATIONS"))


@hookimpl
def gatebox_cli_commands():
    return COMMANDS


@hookimpl
def gatebox_policy_checks(store):
    # In the chain's order: blocked IPs at connect; at RCPT the lists first
    # (a whitelisted client skips the layers after them), then DNSBL, reverse
    # DNS and the greylist; at DATA part 2's parts.
    return (access.policy_checks(store) + lists.policy_checks(store) +
            dnsbl.policy_checks(store) + rdns.policy_checks(store) +
            greylist.policy_checks(store) + _each("policy_checks", store))


@hookimpl
def gatebox_message_signers(store):
    return _each("signers", store)


@hookimpl
def gatebox_message_actions(store):
    return _each("message_actions", store)


@hookimpl
def gatebox_quarantine_released(store, item, message, actor):
    # One part failing (Bayes' database, say) never keeps the others from hearing it.
    for part in PARTS:
        hook = getattr(part, "on_released", None)
        if hook is None:
            continue
        try:
            hook(store, item, message, actor)
        except Exception:
            log.exception("Anti-Spam: %s could not take the release of %s", part.__name__, item.id)


@hookimpl
def gatebox_dovecot_settings(store, data_dir):
    return "".join(_each("dovecot_settings", store, data_dir))


@hookimpl
def gatebox_public_endpoints():
    return _each("PUBLIC_ENDPOINTS")


@hookimpl
def gatebox_services(store, options):
    return _each("services", store, options)


@hookimpl
def gatebox_dashboard_notes(store):
    notes = []
    for zone in dnsbl.needs_attention(store):
        if zone.healthy is False:
            notes.append(f"Anti-Spam: the DNS blocklist {zone.zone} failed its test "
                         f"({zone.detail}) and decides nothing until it passes again.")
        if zone.warning:
            notes.append(f"Anti-Spam: the DNS blocklist {zone.zone}: {zone.warning}")
    return notes + _each("dashboard_notes", store)


@hookimpl
def gatebox_menu_pages():
    from .web import menu_pages
    return menu_pages()
