"""Going back to the firmware in the other slot, and asking for a reboot."""

from __future__ import annotations

import subprocess
import time

from firmware.system import durable

from . import errors
from .runtime import Runtime
from .status import status

REBOOT_REQUEST = "reboot"


def rollback(runtime: Runtime) -> str:
    """Makes the other slot the one to boot next, if it is known to boot.
    The RAUC service (root) changes the boot loader's flags."""
    current = status(runtime)
    if current.problem:
        raise errors.RollbackRefused(current.problem)
    other = current.other
    if other is None:
        raise errors.RollbackRefused("There is no other slot to go back to.")
    if not other.good:
        raise errors.RollbackRefused(
            f"Slot {other.bootname} holds no firmware known to boot "
            f"({'never installed' if not other.version else 'version ' + other.version + ' was not marked good'}); "
            "nothing was changed.")
    result = subprocess.run([runtime.rauc, "--conf", str(runtime.system_conf), "status",
                             "mark-active", other.name], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise errors.RollbackRefused(f"The boot loader refused: {lines[-1] if lines else 'no answer'}")
    return (f"Slot {other.bootname} (version {other.version or 'unknown'}) boots next; "
            "reboot to run it.")


def request_reboot(runtime: Runtime) -> None:
    """The web UI's user cannot reboot the box; a root path unit
    (gatebox-reboot.path) reboots when this file appears."""
    durable.make_directories(runtime.requests_dir)
    durable.write_atomically(runtime.requests_dir / REBOOT_REQUEST, f"{time.time()}\n")
