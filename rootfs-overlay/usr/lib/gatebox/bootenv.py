"""Read and change GRUB's environment block (grubenv), where the A/B slot
choice lives: ORDER, A_OK/A_TRY, B_OK/B_TRY (the names RAUC's GRUB backend
uses) and MACHINE_ID. The block is a fixed 1024-byte file that GRUB itself
rewrites in place at boot, so it must keep that size exactly.

    bootenv.py FILE                 print the variables
    bootenv.py FILE KEY=VALUE ...   set variables (makes FILE when missing)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys

HEADER = b"# GRUB Environment Block\n"
SIZE = 1024
BOOT_MOUNT = "/mnt/boot"
BOOT_GRUBENV = BOOT_MOUNT + "/grub/grubenv"
LOCK = "/run/lock/gatebox-bootenv.lock"


class Unavailable(Exception):
    """The boot partition cannot be mounted."""


@contextlib.contextmanager
def mounted():
    """Yields the path of the box's grubenv, with the boot partition mounted
    while needed (it stays unmounted otherwise, so a power cut rarely finds it
    mid-write) and a lock that keeps two writers of the block apart.
    GATEBOX_GRUBENV names another file and skips the mounting (tests, builds)."""
    override = os.environ.get("GATEBOX_GRUBENV")
    if override:
        yield override
        return
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mounted_here = False
        if not os.path.ismount(BOOT_MOUNT):
            os.makedirs(BOOT_MOUNT, exist_ok=True)
            result = subprocess.run(["mount", BOOT_MOUNT], capture_output=True, text=True)
            if result.returncode != 0:
                raise Unavailable(f"boot partition not mounted: {result.stderr.strip()}")
            mounted_here = True
        try:
            yield BOOT_GRUBENV
        finally:
            if mounted_here:
                subprocess.run(["umount", BOOT_MOUNT], check=False)


def read(path: str) -> dict[str, str]:
    try:
        with open(path, "rb") as handle:
            block = handle.read()
    except FileNotFoundError:
        return {}
    if not block.startswith(HEADER):
        raise ValueError(f"{path}: not a GRUB environment block")
    values = {}
    for line in block[len(HEADER):].split(b"\n"):
        if not line or line.startswith(b"#"):
            continue
        key, _, value = line.decode().partition("=")
        values[key] = value.replace("\\n", "\n").replace("\\\\", "\\")
    return values


def render(values: dict[str, str]) -> bytes:
    body = b"".join(f"{key}={value.replace(chr(92), chr(92) * 2)}\n".encode()
                    for key, value in values.items())
    block = HEADER + body
    if len(block) > SIZE:
        raise ValueError("environment block full")
    return block + b"#" * (SIZE - len(block))


def update(path: str, changes: dict[str, str]) -> dict[str, str]:
    values = read(path)
    values.update(changes)
    temporary = path + ".new"
    with open(temporary, "wb") as handle:
        handle.write(render(values))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return values


def main(argv: list[str]) -> int:
    path, assignments = argv[0], argv[1:]
    if assignments:
        update(path, dict(item.split("=", 1) for item in assignments))
    for key, value in read(path).items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
