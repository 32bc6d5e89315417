"""The Anti-Virus SoftPak's hook implementations (manifest.toml: hooks)."""

from __future__ import annotations

from firmware.plugins import hookimpl

from . import clamd_service, scan, signatures, status, updates
from .settings import ENABLED, OFFLINE, UPDATE_SOURCE
from .cli import COMMANDS
from .settings import SETTINGS


@hookimpl
def gatebox_settings():
    return SETTINGS


@hookimpl
def gatebox_policy_checks(store):
    return scan.policy_checks(store)


@hookimpl
def gatebox_services(store, options):
    wanted = [clamd_service.service(store, options)]
    if store.get(ENABLED) and store.get(UPDATE_SOURCE) != OFFLINE:
        wanted.append(updates.UpdatesService(store, options["data_dir"]))
    return [service for service in wanted if service is not None]


@hookimpl
def gatebox_dashboard_notes(store):
    return status.dashboard_notes(store)


@hookimpl
def gatebox_cli_commands():
    return COMMANDS


@hookimpl
def gatebox_usb_offer_apply(store, offer):
    return signatures.apply_usb_offer(store, offer)


@hookimpl
def gatebox_menu_pages():
    from .web import menu_pages
    return menu_pages()
