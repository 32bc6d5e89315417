"""Whether the Anti-Virus SoftPak scans now."""

from __future__ import annotations

from firmware.licensing import is_active

SOFTPAK_ID = "antivirus"


def is_licensed(store, now=None) -> bool:
    return is_active(store, SOFTPAK_ID, now)
