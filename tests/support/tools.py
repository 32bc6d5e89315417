"""The programs the tests drive, each with the Debian package that brings it.

A test that needs a missing program fails at once and names the package:
CI installs everything (`make deps`), so a missing program is a broken
machine, never a reason to skip."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Tool:
    what: str              # as the failure names it
    package: str           # the Debian package that installs it
    program: str = ""      # found on PATH or at this absolute path
    probe: tuple = ()      # a command that exits 0 only when the tool works

    def works(self) -> bool:
        if self.program and not _found(self.program):
            return False
        if self.probe:
            try:
                return subprocess.run(self.probe, capture_output=True, timeout=30).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                return False
        return True


def _found(program: str) -> bool:
    if os.path.isabs(program):
        return os.access(program, os.X_OK)
    return shutil.which(program) is not None or any(
        os.access(os.path.join(d, program), os.X_OK) for d in ("/usr/sbin", "/sbin"))


TOOLS = {tool.what: tool for tool in [
    Tool("swaks", "swaks", "swaks"),
    # swaks's TLS is only a Recommends of the swaks package.
    Tool("swaks TLS support", "libnet-ssleay-perl", probe=("perl", "-MNet::SSLeay", "-e1")),
    Tool("smtp-sink", "postfix", "smtp-sink"),
    Tool("smtp-source", "postfix", "smtp-source"),
    Tool("postfix", "postfix", "/usr/sbin/postfix"),
    Tool("dnsmasq", "dnsmasq-base", "dnsmasq"),
    Tool("slapd", "slapd", "/usr/sbin/slapd"),
    Tool("dovecot", "dovecot-core", "dovecot"),
    Tool("dovecot imap", "dovecot-imapd", "/usr/lib/dovecot/imap"),
    Tool("dovecot pop3", "dovecot-pop3d", "/usr/lib/dovecot/pop3"),
    Tool("chromium", "chromium", "/usr/bin/chromium"),
    # Playwright's bundled node needs libatomic.so.1, which only a compiler
    # toolchain happens to bring along.
    Tool("playwright driver", "libatomic1", probe=(
        sys.executable, "-c",
        "import subprocess; from playwright._impl._driver import compute_driver_executable as d; "
        "subprocess.run([d()[0], '--version'], check=True, capture_output=True)")),
    Tool("openssl", "openssl", "openssl"),
    Tool("clamd", "clamav-daemon", "/usr/sbin/clamd"),
    Tool("sigtool", "clamav", "sigtool"),
    Tool("freshclam", "clamav-freshclam", "freshclam"),
    Tool("clamav-testfiles", "clamav-testfiles",
         probe=("test", "-r", "/usr/share/clamav-testfiles/clam.exe")),
    Tool("sqlite3", "sqlite3", "sqlite3"),
    Tool("rauc", "rauc", "rauc"),
    Tool("dbus-daemon", "dbus-daemon", "dbus-daemon"),
    Tool("mksquashfs", "squashfs-tools", "mksquashfs"),
    Tool("unsquashfs", "squashfs-tools", "unsquashfs"),
    Tool("grub-editenv", "grub-common", "grub-editenv"),
    Tool("mkfs.vfat", "dosfstools", "mkfs.vfat"),
    Tool("mcopy", "mtools", "mcopy"),
    Tool("sfdisk", "fdisk", "sfdisk"),
    Tool("qemu-system-x86_64", "qemu-system-x86", "qemu-system-x86_64"),
    Tool("qemu-system-aarch64", "qemu-system-arm", "qemu-system-aarch64"),
    Tool("qemu-img", "qemu-utils", "qemu-img"),
]}


@functools.lru_cache(maxsize=None)
def _works(what: str) -> bool:
    return TOOLS[what].works()


def missing(*names: str) -> list[Tool]:
    return [TOOLS[name] for name in names if not _works(name)]


def describe(tools: list[Tool]) -> str:
    named = "; ".join(f"{t.what} (Debian package {t.package})" for t in tools)
    return f"missing: {named}; `make deps` installs {'it' if len(tools) == 1 else 'them'}"


def require(*names: str) -> None:
    """Fails the calling test (or fixture) when any of the tools is missing."""
    absent = missing(*names)
    if absent:
        pytest.fail(describe(absent), pytrace=False)
