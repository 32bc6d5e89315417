"""All settings the box knows: the core declarations plus what installed
SoftPaks declare. Keyed by the dotted setting name."""

from __future__ import annotations

from firmware import plugins

from .schema import CORE_SETTINGS


def declarations() -> dict:
    result = {s.key: s for s in CORE_SETTINGS}
    for setting in plugins.softpak_settings():
        result.setdefault(setting.key, setting)
    return result
