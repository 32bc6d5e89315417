"""The Mail Server SoftPak.

Its gate is in the core schema: `email.server_type` marks every type but
Relay with requires="mailserver", so the settings store refuses them unless
this SoftPak is active. When the license lapses the stored server type is
left as it is; services ask `is_licensed` and fall back to accepting and
keeping mail until a key brings the feature back."""

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
    # Mailbox and Users & Groups settings arrive with their own issue.
    return []


@hookimpl
def gatebox_menu_pages():
    return [{"menu": "Email Server > Settings", "softpak": SOFTPAK_ID,
             "title": "Server Type (Stand-Alone, Multi-drop, Mirrored, ETRN, Mail-bagging)"}]
