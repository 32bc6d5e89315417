"""The Anti-Virus SoftPak's hook implementations (manifest.toml: hooks)."""

from __future__ import annotations

from firmware.plugins import hookimpl

from . import scan
from .settings import SETTINGS


@hookimpl
def gatebox_settings():
    return SETTINGS


@hookimpl
def gatebox_policy_checks(store):
    return scan.policy_checks(store)
