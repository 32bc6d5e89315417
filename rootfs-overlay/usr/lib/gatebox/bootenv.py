"""Read and change GRUB's environment block (grubenv), where the A/B slot
choice lives: ORDER, A_OK/A_TRY, B_OK/B_TRY (the names RAUC's GRUB backend
uses) and MACHINE_ID. The block is a fixed 1024-byte file that GRUB itself
rewrites in place at boot, so it must keep that size exactly.

    bootenv.py FILE                 print the variables
    bootenv.py FILE KEY=VALUE ...   set variables (makes FILE when missing)
"""

from __future__ import annotations

import os
import sys

HEADER = b"# GRUB Environment Block\n"
SIZE = 1024


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
