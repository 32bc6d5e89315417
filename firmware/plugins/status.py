"""What `softpak list`, `license show` and the admin pages say about each
SoftPak: installed (its manifest), licensed (the keys), active (licensed,
and what it requires licensed too), and until when."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from firmware.licensing import NOT_INSTALLED, expiry
from firmware.licensing.activation import granted, license_day

from .registry import Registry, registry


@dataclass
class SoftPakStatus:
    id: str
    name: str
    installed: bool
    licensed: bool
    active: bool
    expiry: datetime.date | None
    state: str | None        # ok / warning / grace / off, None when never licensed
    note: str                # the sentence for the administrator

    @property
    def needs_attention(self) -> bool:
        # A grant for a SoftPak this firmware lacks runs nothing that could stop.
        return self.installed and self.state in (expiry.WARNING, expiry.GRACE, expiry.OFF)


def softpak_status(store, now=None, softpaks: Registry | None = None) -> list[SoftPakStatus]:
    softpaks = softpaks or registry()
    manifests = softpaks.manifests
    grants = granted(store, now)
    now = license_day(store, now).day  # a clock set back extends nothing
    loadable = softpaks.loadable(
        {s for s, end in grants.items() if expiry.state(end, now) in expiry.RUNNING_STATES})
    rows = []
    for softpak in sorted(set(manifests) | set(grants)):
        manifest = manifests.get(softpak)
        licensed = softpak in grants
        end = grants.get(softpak)
        state = expiry.state(end, now) if licensed else None
        if not manifest:
            note = (f"licensed ({expiry.describe(end, now)}), but {NOT_INSTALLED}: "
                    "takes effect once a firmware that has it is installed")
        elif not licensed:
            note = "not licensed: " + manifest.description.split(". ")[0].rstrip(".") + "."
        else:
            note = expiry.describe(end, now)
        rows.append(SoftPakStatus(softpak, softpaks.name(softpak), manifest is not None, licensed,
                                  softpak in loadable, end, state, note))
    return rows


def warnings(store, now=None) -> list[str]:
    """One line per SoftPak that expires soon, is in its grace period or has stopped."""
    return [f"{row.name} SoftPak: {row.note}" for row in softpak_status(store, now)
            if row.needs_attention]
