"""A small tmpfs, for running the queue out of space for real, and ballast
that fills it to a chosen margin."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

import pytest

CHUNK = 64 * 1024


@contextlib.contextmanager
def small_tmpfs(directory: Path, size: str = "2m"):
    """Mount a tmpfs of `size` on `directory` (created if missing) for the
    block's duration."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (the tests run as root in CI)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                    str(directory)], check=True)
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)]).returncode != 0:
            # Something still holds a file open there: detach it anyway.
            subprocess.run(["umount", "-l", str(directory)], check=True)


def free_bytes(directory: Path) -> int:
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def fill(path: Path, leave: int = 0) -> int:
    """Grow the file at `path` until its file system is full, then give
    back `leave` octets. Returns the file's size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        block = b"\0" * CHUNK
        while True:
            try:
                os.write(fd, block)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
        size = os.fstat(fd).st_size
        os.ftruncate(fd, max(size - leave, 0))
        return os.fstat(fd).st_size
    finally:
        os.close(fd)
