"""The root side of USB offers (gatebox-usb.service): when a USB block
device with a vfat, exfat or ext4 filesystem appears, mount it read-only
under /run/gatebox/usb/<name>, scan it and record its offers; when it goes,
unmount it and drop them.

It runs for as long as the box does, so gatebox-usb.service starts it as
`gatebox-usb-watch --data /data` (main below): the `gatebox` command
loads every command's modules (about 49 MB resident), this module alone
about 19 MB, which a 256 MB box feels."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from . import offers

log = logging.getLogger("gatebox.usb")

MOUNT_BASE = Path("/run/gatebox/usb")
FILESYSTEMS = {"vfat", "exfat", "ext4"}
# Read-only and inert: nothing on a stick runs, nothing on it changes.
MOUNT_OPTIONS = "ro,nosuid,nodev,noexec"


def is_usb_filesystem(device) -> bool:
    return (device.get("ID_BUS") == "usb" and device.get("ID_FS_TYPE") in FILESYSTEMS
            and device.device_type in ("partition", "disk"))


def attach(data: Path, device) -> None:
    name = device.sys_name
    mountpoint = MOUNT_BASE / name
    mountpoint.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", device.get("ID_FS_TYPE"), "-o", MOUNT_OPTIONS,
                             device.device_node, str(mountpoint)], capture_output=True, text=True)
    if result.returncode != 0 and "already mounted" not in result.stderr:
        log.warning("usb %s: not mounted: %s", name, result.stderr.strip())
        return
    found = offers.scan(mountpoint, name)
    offers.record(data, name, found)
    log.info("usb %s: %d offer(s): %s", name, len(found), ", ".join(o.name for o in found) or "none")


def detach(data: Path, name: str) -> None:
    offers.drop(data, name)
    mountpoint = MOUNT_BASE / name
    # Lazy: the stick is already gone; whatever still holds a file lets go later.
    subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
    try:
        mountpoint.rmdir()
    except OSError:
        pass
    log.info("usb %s: removed", name)


def watch(data: Path) -> None:
    import pyudev
    context = pyudev.Context()
    monitor = pyudev.Monitor.from_netlink(context)
    monitor.filter_by("block")
    monitor.start()
    # Offers from before a restart are stale; sticks already in are taken again.
    offers.drop(data)
    for device in context.list_devices(subsystem="block"):
        if is_usb_filesystem(device):
            attach(data, device)
    for device in iter(monitor.poll, None):
        if device.action == "add" and is_usb_filesystem(device):
            attach(data, device)
        elif device.action == "remove" and (MOUNT_BASE / device.sys_name).exists():
            detach(data, device.sys_name)


def main(argv=None) -> None:
    import argparse
    parser = argparse.ArgumentParser(prog="gatebox-usb-watch",
                                     description="Mount inserted USB sticks read-only and record "
                                                 "what they offer (runs as root).")
    parser.add_argument("--data", type=Path, default=Path("/data"), help="data directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    watch(args.data)


if __name__ == "__main__":
    main()
