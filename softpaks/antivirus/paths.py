"""Where the Anti-Virus SoftPak keeps its files: everything under
DATA/antivirus/, so clamd never reads the system's /etc/clamav or
/var/lib/clamav. All paths are absolute (clamd's configuration needs them)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

# sun_path holds 108 bytes on Linux; a margin keeps clear of it.
SOCKET_PATH_LIMIT = 100

# What clamd loads from its DatabaseDirectory: the official databases
# (.cvd signed and compressed, .cld unpacked after incremental updates) and
# the local signature kinds an administrator may import.
SIGNATURE_SUFFIXES = (".cvd", ".cld", ".cud", ".hdb", ".hsb", ".ndb", ".ldb", ".mdb", ".msb",
                      ".cdb", ".fp", ".sfp", ".ign2", ".yar", ".yara")


def antivirus_dir(data_dir) -> Path:
    return Path(data_dir).resolve() / "antivirus"


def db_dir(data_dir) -> Path:
    """The signatures: clamd's DatabaseDirectory."""
    return antivirus_dir(data_dir) / "signatures"


def state_dir(data_dir) -> Path:
    """Bookkeeping of the SoftPak's own (update schedule, cool-downs)."""
    return antivirus_dir(data_dir) / "state"


def temp_dir(data_dir) -> Path:
    """clamd's TemporaryDirectory: each scanned stream is spooled here."""
    return antivirus_dir(data_dir) / "tmp"


def clamd_conf(data_dir) -> Path:
    return antivirus_dir(data_dir) / "clamd.conf"


def clamd_log(data_dir) -> Path:
    return antivirus_dir(data_dir) / "clamd.log"


def external_flag(data_dir) -> Path:
    """Present while scanning is wanted and clamd runs outside `gatebox run`
    (the image's systemd unit starts on it)."""
    return antivirus_dir(data_dir) / "clamd.wanted"


def _tag(data_dir) -> str:
    return hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:10]


def socket_path(data_dir) -> Path:
    """DATA/antivirus/clamd.sock, or, when that would be too long for a unix
    socket, a directory of its own under the temporary directory named after
    the data directory (so two boxes on one machine never share one)."""
    preferred = antivirus_dir(data_dir) / "clamd.sock"
    if len(str(preferred).encode()) < SOCKET_PATH_LIMIT:
        return preferred
    return Path(tempfile.gettempdir()) / f"gatebox-clamd-{_tag(data_dir)}" / "clamd.sock"


def signature_files(directory) -> list[Path]:
    """The signature files clamd would load from `directory` (a db_dir)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix.lower() in SIGNATURE_SUFFIXES)
