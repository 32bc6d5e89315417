"""Firmware image figures: size (raw, allocated, slot A squashfs, compressed
for download), boot time from QEMU start to SMTP banner and to HTTPS (first
boot, which also initialises /data, and a later boot), and the resident memory
of the gatebox services once healthy, in a 256 MB guest. KVM is measured when
it boots here, software emulation (TCG) always.

    python bench/image.py [--arch x86_64] [--memory 256] [--accel auto|kvm|tcg|both]

Writes bench/results/image-<arch>.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / "qemu"))
import boot  # noqa: E402

MB = 1024 * 1024


def sizes(image: Path) -> dict:
    layout = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True,
                                       text=True, check=True).stdout)["partitiontable"]["partitions"]
    slot_a = layout[1]
    with open(image, "rb") as handle:
        handle.seek(slot_a["start"] * 512)
        superblock = handle.read(96)
    squashfs_bytes = int.from_bytes(superblock[40:48], "little")   # bytes_used
    started = time.monotonic()
    compressed = subprocess.run(f"zstd -q -T0 -19 --long=27 -c '{image}' | wc -c", shell=True,
                                capture_output=True, text=True, check=True).stdout
    return {
        "raw_mb": round(image.stat().st_size / MB, 1),
        "allocated_mb": round(image.stat().st_blocks * 512 / MB, 1),
        "slot_a_squashfs_mb": round(squashfs_bytes / MB, 1),
        "zstd19_mb": round(int(compressed) / MB, 1),
        "zstd19_seconds": round(time.monotonic() - started, 1),
    }


def banner_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            return sock.recv(512).startswith(b"220")
    except OSError:
        return False


def https_ready(port: int) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\nHost: gatebox\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/")
    except OSError:
        return False


def timed_boot(machine: boot.Machine, fresh: bool, timeout: float = 900) -> dict:
    machine.start(fresh=fresh)
    started = machine.started_at
    figures = {}
    https_absent = False
    deadline = started + timeout
    while time.monotonic() < deadline:
        if "smtp_s" not in figures and banner_ready(machine.ports["smtp"]):
            figures["smtp_s"] = round(time.monotonic() - started, 1)
        if "https_s" not in figures and https_ready(machine.ports["https"]):
            figures["https_s"] = round(time.monotonic() - started, 1)
        # The health line says whether this build serves HTTPS at all.
        https_absent = "https=absent" in machine.console().decode(errors="replace")
        if "smtp_s" in figures and ("https_s" in figures or https_absent):
            break
        time.sleep(0.5)
    if https_absent:
        figures["https_s"] = None
    health = machine.wait_healthy(timeout=max(1, deadline - time.monotonic()), boot=1)
    figures["healthy_s"] = round(time.monotonic() - started, 1)
    memory = re.search(r"uptime=([\d.]+)s .*services_rss_kb=(\d+) services_cgroup_kb=(\d+)", health)
    figures.update(guest_uptime_at_healthy_s=float(memory.group(1)),
                   services_rss_mb=round(int(memory.group(2)) / 1024, 1),
                   services_cgroup_mb=round(int(memory.group(3)) / 1024, 1))
    machine.stop()
    return figures


def boots(arch: str, accel: str, memory_mb: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="gatebox-bench-") as scratch:
        machine = boot.Machine(Path(scratch), arch, memory_mb=memory_mb, accel=accel)
        first = timed_boot(machine, fresh=True)
        later = timed_boot(machine, fresh=False)
    return {"first_boot": first, "later_boot": later}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--memory", type=int, default=256)
    parser.add_argument("--accel", default="both", choices=("auto", "kvm", "tcg", "both"))
    args = parser.parse_args(argv)
    image = boot.image_path(args.arch)
    results = {"image": str(image.relative_to(TOP)), "memory_mb": args.memory, "sizes": sizes(image)}
    if args.accel == "both":
        accels = (["kvm"] if boot.kvm_boots(image, args.arch) else []) + ["tcg"]
        if "kvm" not in accels:
            results["kvm"] = "not measured: KVM does not boot the image on this machine"
    else:
        accels = [args.accel if args.accel != "auto" else
                  ("kvm" if boot.kvm_boots(image, args.arch) else "tcg")]
    for accel in accels:
        results[accel] = boots(args.arch, accel, args.memory)
    out = TOP / "bench" / "results" / f"image-{args.arch}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
