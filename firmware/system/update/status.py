"""What System > Firmware and `gatebox firmware status` show: the running
version and slot, the other slot, and what happened to the last update."""

from __future__ import annotations

import dataclasses
import subprocess

from .runtime import Runtime
from .slot_state import BootState, Slot, read_boot_state
from .versions import running_version


@dataclasses.dataclass
class FirmwareStatus:
    running_version: str
    state: BootState
    problem: str | None = None  # why the slots could not be read

    @property
    def booted(self) -> Slot | None:
        return self.state.slots.get(self.state.booted or "")

    @property
    def other(self) -> Slot | None:
        others = [slot for name, slot in self.state.slots.items() if name != self.state.booted]
        return others[0] if self.booted and others else None

    @property
    def abandoned(self) -> str | None:
        """The box was told to boot the other slot, and it is running this one
        again: the other slot's try never came up healthy."""
        booted, other = self.booted, self.other
        if not booted or not other or self.state.primary != other.bootname or other.good:
            return None
        return (f"The update to version {other.version or 'unknown'} in slot {other.bootname} "
                f"did not come up healthy; the box went back to slot {booted.bootname} "
                f"(version {booted.version}).")

    @property
    def pending(self) -> str | None:
        other = self.other
        if not other or self.state.primary != other.bootname or not other.good:
            return None
        return (f"Version {other.version or 'unknown'} is installed in slot {other.bootname}; "
                "it runs after the next reboot (and the box comes back to this slot if it "
                "does not come up healthy).")

    def as_dict(self) -> dict:
        return {"running_version": self.running_version, "booted": self.state.booted,
                "primary": self.state.primary, "problem": self.problem,
                "abandoned": self.abandoned, "pending": self.pending,
                "slots": {name: dataclasses.asdict(slot) for name, slot in self.state.slots.items()}}


def status(runtime: Runtime) -> FirmwareStatus:
    if not runtime.system_conf.exists():
        return FirmwareStatus(running_version=running_version(runtime.version_file), state=BootState(),
                              problem="This system has no update configuration "
                                      f"({runtime.system_conf}): firmware updates are installed on the box.")
    try:
        state = read_boot_state(runtime)
        problem = None
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        state, problem = BootState(), f"The slots could not be read: {error}"
    return FirmwareStatus(running_version=running_version(runtime.version_file),
                          state=state, problem=problem)
