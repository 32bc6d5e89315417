"""The A/B slots as the boot loader sees them: which one runs, which one is
to boot next, which are marked good, what version each holds. Read from the
GRUB environment block where it is at hand, else from `rauc status` (the
root service reads the block for the web UI's unprivileged user)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess

from firmware.system.durable import make_directories, write_json_atomically

from .runtime import Runtime
from .versions import running_version

GRUBENV_HEADER = "# GRUB Environment Block"


@dataclasses.dataclass
class Slot:
    name: str  # RAUC's name, rootfs.0
    bootname: str  # the boot loader's, A
    good: bool = False
    version: str | None = None


@dataclasses.dataclass
class BootState:
    booted: str | None = None
    primary: str | None = None
    slots: dict[str, Slot] = dataclasses.field(default_factory=dict)


def configured_slots(runtime: Runtime) -> dict[str, Slot]:
    config = runtime.system_config()
    slots = {}
    for section in config.sections():
        if section.startswith("slot.") and config.has_option(section, "bootname"):
            bootname = config.get(section, "bootname")
            slots[bootname] = Slot(name=section[len("slot."):], bootname=bootname)
    return slots or {"A": Slot("rootfs.0", "A"), "B": Slot("rootfs.1", "B")}


def booted_slot(runtime: Runtime) -> str | None:
    try:
        match = re.search(r"\brauc\.slot=(\S+)", runtime.cmdline.read_text())
    except OSError:
        return None
    return match.group(1) if match else None


def read_boot_state(runtime: Runtime) -> BootState:
    if runtime.grubenv is not None and runtime.grubenv.exists():
        state = _from_grubenv(runtime)
    else:
        state = _from_rauc(runtime)
    recorded = recorded_versions(runtime)
    for bootname, slot in state.slots.items():
        slot.version = slot.version or recorded.get(bootname)
    if state.booted in state.slots:
        state.slots[state.booted].version = running_version(runtime.version_file)
    return state


def _from_grubenv(runtime: Runtime) -> BootState:
    values = {}
    lines = runtime.grubenv.read_text(errors="replace").splitlines()
    if lines[:1] != [GRUBENV_HEADER]:
        raise ValueError(f"{runtime.grubenv}: not a GRUB environment block")
    for line in lines[1:]:
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key] = value
    slots = configured_slots(runtime)
    for bootname, slot in slots.items():
        slot.good = values.get(f"{bootname}_OK") == "1" and values.get(f"{bootname}_TRY", "0") == "0"
    order = [name for name in values.get("ORDER", "A B").split() if name in slots]
    return BootState(booted=booted_slot(runtime), primary=order[0] if order else None, slots=slots)


def _from_rauc(runtime: Runtime) -> BootState:
    """Raises OSError or ValueError when RAUC cannot be asked."""
    result = subprocess.run([runtime.rauc, "--conf", str(runtime.system_conf), "status",
                             "--detailed", "--output-format=json"],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise ValueError(lines[-1] if lines else "rauc status failed")
    answer = json.loads(result.stdout)
    slots, primary = {}, None
    for entry in answer.get("slots", []):
        for name, fields in entry.items():
            bootname = fields.get("bootname")
            if not bootname:
                continue
            bundle = (fields.get("slot_status") or {}).get("bundle") or {}
            slots[bootname] = Slot(name=name, bootname=bootname,
                                   good=fields.get("boot_status") == "good",
                                   version=bundle.get("version"))
            if name == answer.get("boot_primary"):
                primary = bootname
    return BootState(booted=answer.get("booted") or booted_slot(runtime), primary=primary,
                     slots=slots)


def recorded_versions(runtime: Runtime) -> dict[str, str]:
    """Versions this firmware installed, by slot: RAUC's own record of a slot
    is lost when the data partition is wiped, or was never made for slot A."""
    try:
        return json.loads(runtime.slot_versions_file.read_text())
    except (OSError, ValueError):
        return {}


def record_version(runtime: Runtime, bootname: str, version: str) -> None:
    versions = recorded_versions(runtime)
    versions[bootname] = version
    make_directories(runtime.slot_versions_file.parent)
    write_json_atomically(runtime.slot_versions_file, versions)
