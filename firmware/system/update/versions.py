"""Firmware version numbers: which one runs, and which of two is newer."""

from __future__ import annotations

import re
from pathlib import Path

from firmware import __version__

# Written into the root slot when the image or a bundle is built, so a bundle
# re-stamped with a newer version reports that version once it runs.
VERSION_FILE = Path("/etc/gatebox/version")


def running_version(version_file: Path = VERSION_FILE) -> str:
    try:
        stamped = version_file.read_text().strip()
    except OSError:
        stamped = ""
    return stamped or __version__


def version_key(version: str) -> tuple:
    """"1.10.0" > "1.9.2" > "1.9.2rc1": numbers compare as numbers, and a
    pre-release suffix sorts before the release it leads to."""
    release, suffix = re.match(r"^v?([0-9.]*)(.*)$", version.strip()).groups()
    numbers = tuple(int(part) for part in release.split(".") if part != "")
    numbers = numbers + (0,) * (4 - len(numbers))
    return numbers + ((1, "") if not suffix else (0, suffix))


def is_newer(candidate: str, than: str) -> bool:
    return version_key(candidate) > version_key(than)
