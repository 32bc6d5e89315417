"""Whether the Mail Server SoftPak runs now, and which server types need it."""

from __future__ import annotations

from firmware.licensing import is_active

SOFTPAK_ID = "mailserver"
GATED_SERVER_TYPES = ("standalone", "multidrop", "mirrored", "etrn", "mailbag")


def is_licensed(store, now=None) -> bool:
    return is_active(store, SOFTPAK_ID, now)


def server_type_runs(store, server_type: str, now=None) -> bool:
    """Whether a stored server type may run now (Relay always may)."""
    return server_type not in GATED_SERVER_TYPES or is_licensed(store, now)
