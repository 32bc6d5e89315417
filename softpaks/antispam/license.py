"""Whether the Anti-Spam SoftPak filters now."""

from __future__ import annotations

from firmware.licensing import is_active

SOFTPAK_ID = "antispam"


def is_licensed(store, now=None) -> bool:
    return is_active(store, SOFTPAK_ID, now)
