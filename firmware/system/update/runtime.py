"""Where the update machinery finds things on the box. Every path can be
replaced, so host tests drive the same code with a grubenv file, a kernel
command line and a RAUC configuration of their own."""

from __future__ import annotations

import configparser
import dataclasses
import os
from pathlib import Path

from .versions import VERSION_FILE


@dataclasses.dataclass
class Runtime:
    data: Path
    rauc: str = "rauc"
    system_conf: Path = Path("/etc/rauc/system.conf")
    cmdline: Path = Path("/proc/cmdline")
    # Read directly only where it is at hand (tests, a root shell with the
    # boot partition mounted); otherwise `rauc status` asks the root service.
    grubenv: Path | None = None
    version_file: Path = VERSION_FILE
    keyring: Path | None = None  # default: system.conf's [keyring] path

    def __post_init__(self):
        self.data = Path(self.data)

    @classmethod
    def from_environment(cls, data) -> "Runtime":
        """The box's paths, each replaceable by a GATEBOX_* variable (tests,
        a development machine with a RAUC configuration of its own)."""
        env = os.environ
        runtime = cls(data=data, rauc=env.get("GATEBOX_RAUC", "rauc"))
        for field, variable in (("system_conf", "GATEBOX_RAUC_CONF"), ("cmdline", "GATEBOX_CMDLINE"),
                                ("grubenv", "GATEBOX_GRUBENV"), ("version_file", "GATEBOX_VERSION_FILE"),
                                ("keyring", "GATEBOX_RAUC_KEYRING")):
            if env.get(variable):
                setattr(runtime, field, Path(env[variable]))
        return runtime

    @property
    def firmware_dir(self) -> Path:
        return self.data / "firmware"

    @property
    def upload_dir(self) -> Path:
        return self.firmware_dir / "upload"

    @property
    def progress_file(self) -> Path:
        return self.firmware_dir / "install.json"

    @property
    def slot_versions_file(self) -> Path:
        return self.firmware_dir / "slots.json"

    @property
    def requests_dir(self) -> Path:
        return self.data / "requests"

    def system_config(self) -> configparser.ConfigParser:
        config = configparser.ConfigParser(interpolation=None)
        config.read(self.system_conf)
        return config

    def compatible(self) -> str | None:
        return self.system_config().get("system", "compatible", fallback=None)

    def keyring_path(self) -> Path | None:
        if self.keyring is not None:
            return self.keyring
        path = self.system_config().get("keyring", "path", fallback=None)
        return Path(path) if path else None
