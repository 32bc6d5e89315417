"""Files that survive a power cut whole or not at all, and that a root
process can write inside the data partition, which the service user owns.

A file is written under a fresh temporary name (O_CREAT|O_EXCL|O_NOFOLLOW:
never through something planted there), fsync'd, renamed over the real name
(a rename replaces a symlink, it does not follow it) and its directory
fsync'd, so after a power cut the name holds the old content or the new,
never an empty or half-written file. Everything happens relative to one
directory descriptor opened without following a symlink, and modes are set
on descriptors, never through a path."""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import time
from pathlib import Path

log = logging.getLogger("gatebox")

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UntrustedDirectory(OSError):
    """A directory root must write in is not root's alone."""


def write_atomically(path, data: bytes | str, mode: int = 0o644, *,
                     trusted_owner: int | None = None) -> None:
    """Replace PATH by DATA durably. With trusted_owner, the directory must
    belong to that user and be writable by nobody else (a root helper's)."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    directory = os.open(path.parent, _DIRECTORY_FLAGS)
    try:
        if trusted_owner is not None:
            _check_trusted(directory, path.parent, trusted_owner)
        temporary = f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(temporary, _NEW_FILE_FLAGS, 0o600, dir_fd=directory)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(temporary, dir_fd=directory)
            raise
        os.close(fd)
        os.replace(temporary, path.name, src_dir_fd=directory, dst_dir_fd=directory)
        os.fsync(directory)
    finally:
        os.close(directory)


def create_once(path, data: bytes, mode: int = 0o600) -> bytes:
    """Make PATH hold DATA unless it already exists whole; returns what PATH
    holds. Made under a temporary name and linked into place, so a process
    racing us, or a power cut, never sees the name empty; a file left empty
    by an older writer is made again."""
    path = Path(path)
    directory = os.open(path.parent, _DIRECTORY_FLAGS)
    try:
        try:
            existing = _read_at(directory, path.name)
            if existing:
                return existing
            os.unlink(path.name, dir_fd=directory)
        except FileNotFoundError:
            pass
        temporary = f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(temporary, _NEW_FILE_FLAGS, 0o600, dir_fd=directory)
        try:
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path.name, src_dir_fd=directory, dst_dir_fd=directory,
                    follow_symlinks=False)
        except FileExistsError:
            return _read_at(directory, path.name)
        finally:
            os.unlink(temporary, dir_fd=directory)
            os.fsync(directory)
        return data
    finally:
        os.close(directory)


def _read_at(directory: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def write_json_atomically(path, value, mode: int = 0o644, **options) -> None:
    write_atomically(path, json.dumps(value, indent=1), mode, **options)


def sync_directory(path) -> None:
    """Make the names in PATH (files created or renamed there) durable."""
    directory = os.open(path, _DIRECTORY_FLAGS)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def make_directories(path, mode: int = 0o755) -> Path:
    """mkdir -p whose new entries are durable: each parent that gained a
    name is fsync'd."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            continue
        sync_directory(directory.parent)
    return path


def root_directory(path, mode: int = 0o755) -> Path:
    """A directory owned by this (root) process and writable by no one else,
    inside a parent another user may own. Whatever else sits at the name (a
    symlink, that user's directory or file) is moved aside, with a log line."""
    path = Path(path)
    owner = os.geteuid()
    try:
        directory = os.open(path, _DIRECTORY_FLAGS)
    except FileNotFoundError:
        directory = None
    except OSError:  # a symlink (ELOOP) or not a directory
        _move_aside(path)
        directory = None
    if directory is not None:
        try:
            _check_trusted(directory, path, owner)
            return path
        except UntrustedDirectory:
            _move_aside(path)
        finally:
            os.close(directory)
    make_directories(path.parent)
    os.mkdir(path, 0o700)
    directory = os.open(path, _DIRECTORY_FLAGS)
    try:
        info = os.fstat(directory)
        if info.st_uid != owner:  # raced by another user between mkdir and open
            raise UntrustedDirectory(f"{path}: not owned by uid {owner}")
        os.fchmod(directory, mode)
    finally:
        os.close(directory)
    sync_directory(path.parent)
    return path


def _check_trusted(directory: int, name, owner: int) -> None:
    info = os.fstat(directory)
    if info.st_uid != owner or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UntrustedDirectory(
            f"{name}: owned by uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}; "
            f"expected uid {owner} and writable by it alone")


def _move_aside(path: Path) -> None:
    aside = path.with_name(f"{path.name}.untrusted-{int(time.time())}-{secrets.token_hex(3)}")
    os.rename(path, aside)
    log.warning("%s was not this service's own directory; moved it to %s", path, aside)
