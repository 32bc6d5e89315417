"""RAUC's pre-install handler (system.conf [handlers] pre-install): refuses a
bundle older than the running firmware, whoever asked for it. The upload page
and the CLI refuse first with a friendlier message; this is the refusal the
service user cannot get around, since RAUC runs it as root.

A deliberate downgrade needs root on the box: the file ALLOW_FILE in root's
own directory, owned by root, lets one install through and is then removed."""

from __future__ import annotations

import configparser
import os
import stat
import sys
import syslog
from pathlib import Path

from .versions import VERSION_FILE, running_version, version_key

ROOT_DIR = Path("/data/root")
ALLOW_FILE = "allow-downgrade"


def decide(candidate: str | None, running: str, root_dir: Path) -> str | None:
    """Why the install must stop, or None to let it go on."""
    if not candidate:
        return "the bundle's manifest carries no version"
    if version_key(candidate) >= version_key(running):
        return None
    if _root_allows_once(root_dir):
        return None
    return (f"version {candidate} is older than the running {running}; downgrades are refused "
            f"(root may allow one with {root_dir / ALLOW_FILE})")


def _root_allows_once(root_dir: Path) -> bool:
    try:
        directory = os.open(root_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        folder = os.fstat(directory)
        if folder.st_uid != 0 or folder.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
        try:
            allow = os.stat(ALLOW_FILE, dir_fd=directory, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(allow.st_mode) or allow.st_uid != 0:
            return False
        os.unlink(ALLOW_FILE, dir_fd=directory)
        return True
    finally:
        os.close(directory)


def bundle_version(env) -> str | None:
    """The version in the bundle's signed manifest: RAUC names it in newer
    releases; older ones hand the handler the mounted bundle only."""
    if env.get("RAUC_MF_VERSION"):
        return env["RAUC_MF_VERSION"]
    mount = env.get("RAUC_BUNDLE_MOUNT_POINT")
    if not mount:
        return None
    manifest = configparser.ConfigParser(interpolation=None)
    try:
        manifest.read(Path(mount) / "manifest.raucm")
    except configparser.Error:
        return None
    return manifest.get("update", "version", fallback=None)


def main() -> int:
    env = os.environ
    running = running_version(Path(env.get("GATEBOX_VERSION_FILE") or VERSION_FILE))
    refusal = decide(bundle_version(env), running,
                     Path(env.get("GATEBOX_ROOT_DIR") or ROOT_DIR))
    if refusal is None:
        return 0
    # RAUC keeps a handler's output to itself: the reason goes to the journal.
    syslog.openlog("gatebox-rauc")
    syslog.syslog(syslog.LOG_WARNING, refusal)
    print(f"gatebox: {refusal}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
