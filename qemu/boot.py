"""Boots a gatebox disk image under QEMU the way a LAN user meets the box:
its service ports forwarded to free loopback ports, serial console to a file
(or the terminal), a monitor socket to press Ctrl-Alt-Del or the power button.

Used by `make run` (python3 qemu/boot.py), the system tests and the benchmark.
The base image is never written: each machine boots a qcow2 overlay on it.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
GUEST_PORTS = {"smtp": 25, "submission": 587, "pop3": 110, "imap": 143, "imaps": 993, "https": 443}
# systemd's first line: the kernel and the initramfs are done.
USERSPACE_START = b"systemd[1]: "
HEALTH_LINE = re.compile(rb"gatebox-health: boot (good|NOT good)[^\r\n]*")
KERNEL_START = b"Linux version"


def kvm_works() -> bool:
    """True when /dev/kvm opens and can create a VM (present is not enough:
    containers and nested setups often have the node but no permission)."""
    kvm_get_api_version, kvm_create_vm = 0xAE00, 0xAE01
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, kvm_get_api_version) != 12:
            return False
        os.close(fcntl.ioctl(fd, kvm_create_vm, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def kvm_boots(image: Path, arch: str = "x86_64", seconds: float = 20.0) -> bool:
    """KVM that opens can still fail to run this image (seen: nested KVM
    hanging in GRUB's real-mode start), so try it: the kernel must print
    within a few seconds. The answer is kept in build/kvm-probe per host boot."""
    if arch != "x86_64" or not kvm_works():
        return False
    host_boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    record = TOP / "build" / "kvm-probe"
    if record.exists():
        seen_boot, _, answer = record.read_text().partition(" ")
        if seen_boot == host_boot:
            return answer.strip() == "works"
    with tempfile.TemporaryDirectory(prefix="gatebox-kvm-probe-") as scratch:
        probe = Machine(Path(scratch), arch, image, accel="kvm")
        probe.start()
        deadline = time.monotonic() + seconds
        works = False
        while time.monotonic() < deadline and not works:
            works = KERNEL_START in probe.console()
            time.sleep(0.2)
        probe.process.kill()
        probe.process.wait(10)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(f"{host_boot} {'works' if works else 'hangs'}\n")
    return works


# Looked up before any fork: a child forked from a threaded test process
# must not dlopen (another thread may have held the loader's lock).
_PRCTL = ctypes.CDLL(None).prctl


def _die_with_parent():
    """QEMU must not outlive the test or tool that started it."""
    pr_set_pdeathsig = 1
    _PRCTL(pr_set_pdeathsig, 9)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def image_path(arch: str) -> Path:
    return TOP / "build" / f"gatebox-{arch}.img"


class Machine:
    """One QEMU process booting an overlay of the image."""

    def __init__(self, workdir: Path, arch: str = "x86_64", image: Path | None = None,
                 memory_mb: int = 512, accel: str = "auto", seed: dict | None = None,
                 overlay: Path | None = None, memory_stats: bool = False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.arch = arch
        self.image = Path(image or image_path(arch))
        self.memory_mb = memory_mb
        self.accel = ("kvm" if kvm_boots(self.image, arch) else "tcg") if accel == "auto" else accel
        self.seed = seed
        # A virtio balloon, never inflated: only its statistics are read
        # (guest_memory), what the guest itself counts as free and available.
        self.memory_stats = memory_stats
        self.overlay = Path(overlay or self.workdir / f"gatebox-{arch}.qcow2")
        self.console_path = self.workdir / "console.log"
        self.monitor_path = self.workdir / "monitor.sock"
        self.ports = {name: free_port() for name in GUEST_PORTS}
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    # ---- command line ----------------------------------------------------------
    def command(self, console: str) -> list[str]:
        forwards = ",".join(f"hostfwd=tcp:127.0.0.1:{self.ports[name]}-:{guest}"
                            for name, guest in GUEST_PORTS.items())
        if self.arch == "x86_64":
            command = ["qemu-system-x86_64", "-machine", "pc"]
            firmware = []
        else:
            command = ["qemu-system-aarch64", "-machine", "virt"]
            firmware = ["-bios", "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"]
        if self.accel == "kvm":
            command += ["-accel", "kvm", "-cpu", "host"]
        elif self.arch == "x86_64":
            command += ["-accel", "tcg", "-cpu", "max"]
        else:
            # No pointer authentication, which is slow to emulate.
            command += ["-accel", "tcg", "-cpu", "cortex-a72"]
        command += firmware + [
            "-m", str(self.memory_mb), "-smp", "2",
            "-display", "none", "-no-user-config", "-nodefaults",
            "-drive", f"file={self.overlay},if=virtio,format=qcow2",
            "-nic", f"user,model=virtio-net-pci,{forwards}",
            "-serial", console,
            # A USB controller, so tests can plug a stick in at run time.
            "-device", "qemu-xhci,id=xhci",
            "-monitor", f"unix:{self.monitor_path},server=on,wait=off",
        ]
        if self.arch == "x86_64":
            # Entropy for the first boot's TLS key. Not on aarch64: there the
            # firmware's virtio-rng driver crashes the kernel's EFI stub
            # ("Synchronous Exception"), and the kernel seeds itself without it.
            command += ["-device", "virtio-rng-pci"]
        if self.memory_stats:
            command += ["-device", "virtio-balloon-pci,id=balloon0",
                        "-qmp", f"unix:{self.workdir / 'qmp.sock'},server=on,wait=off"]
        if self.seed:
            seed_file = self.workdir / "seed.txt"
            seed_file.write_text("".join(f"{k}={v}\n" for k, v in self.seed.items()))
            command += ["-fw_cfg", f"name=opt/gatebox/seed,file={seed_file}"]
        return command

    def prepare_overlay(self, fresh: bool = True):
        stale = self.overlay.exists() and self.overlay.stat().st_mtime < self.image.stat().st_mtime
        if fresh or stale or not self.overlay.exists():
            self.overlay.unlink(missing_ok=True)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                            "-b", str(self.image), str(self.overlay)], check=True)

    # ---- life cycle ------------------------------------------------------------
    def start(self, fresh: bool = True) -> "Machine":
        self.prepare_overlay(fresh)
        self.monitor_path.unlink(missing_ok=True)
        self.console_path.write_bytes(b"")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(self.command(f"file:{self.console_path}"),
                                        stdin=subprocess.DEVNULL,
                                        stdout=open(self.workdir / "qemu.log", "ab"),
                                        stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent)
        return self

    def start_first_boot(self, attempts: int = 3, stall_seconds: float = 240.0) -> "Machine":
        """start() for a fresh machine, watched: software emulation now and
        then stalls for good in the kernel's early start (seen once in a few
        dozen boots: no console output for many minutes before userspace).
        Nothing is on the disk yet then, so the machine is powered off and
        started afresh; each stalled console is kept beside the new one."""
        for attempt in range(1, attempts + 1):
            self.start(fresh=True)
            deadline = time.monotonic() + stall_seconds
            while time.monotonic() < deadline:
                if USERSPACE_START in self.console():
                    return self
                time.sleep(1)
            stalled = self.workdir / f"console-stalled-{attempt}.log"
            shutil.copyfile(self.console_path, stalled)
            print(f"boot.py: no userspace {stall_seconds:.0f}s after power-on (attempt {attempt}); "
                  f"console kept in {stalled}; starting again", file=sys.stderr)
            self.process.kill()
            self.process.wait(10)
            self.process = None
        raise TimeoutError(f"the kernel never reached userspace in {attempts} power-ons")

    def console(self) -> bytes:
        return self.console_path.read_bytes() if self.console_path.exists() else b""

    def boots_seen(self) -> int:
        return self.console().count(KERNEL_START)

    def wait_healthy(self, timeout: float = 600.0, boot: int = 1) -> str:
        """Waits for the health check's console line of the given boot; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"QEMU exited ({self.process.returncode}): "
                                   f"{(self.workdir / 'qemu.log').read_text(errors='replace')}")
            lines = [m.group(0).decode() for m in HEALTH_LINE.finditer(self.console())]
            if len(lines) >= boot:
                if "NOT good" in lines[boot - 1]:
                    raise RuntimeError(lines[boot - 1])
                return lines[boot - 1]
            time.sleep(0.5)
        raise TimeoutError(f"no health line for boot {boot} within {timeout:.0f}s")

    def monitor(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.monitor_path))
            time.sleep(0.2)
            sock.recv(4096)          # banner and prompt
            sock.sendall(command.encode() + b"\n")
            time.sleep(0.5)
            try:
                return sock.recv(4096).decode(errors="replace")
            except socket.timeout:
                return ""

    def guest_memory(self) -> dict:
        """The guest's own memory figures (the balloon driver's statistics, in
        bytes: stat-available-memory, stat-free-memory, stat-major-faults...),
        {} until the driver has reported. Needs memory_stats=True."""
        balloon = "/machine/peripheral/balloon0"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.workdir / "qmp.sock"))
            replies = sock.makefile("rb")

            def execute(command: str, **arguments) -> dict:
                sock.sendall(json.dumps({"execute": command, "arguments": arguments}).encode())
                while True:
                    reply = json.loads(replies.readline())
                    if "return" in reply or "error" in reply:
                        return reply
            json.loads(replies.readline())               # the greeting
            execute("qmp_capabilities")
            execute("qom-set", path=balloon, property="guest-stats-polling-interval", value=1)
            stats = execute("qom-get", path=balloon, property="guest-stats").get("return", {})
        # An unreported figure is -1, which QEMU sends as 2**64 - 1.
        return {name: value for name, value in stats.get("stats", {}).items() if value < 2 ** 63}

    def plug_usb_stick(self, image: Path, name: str = "stick"):
        """Hot-plugs a raw disk image as a USB mass-storage device, as an
        administrator inserting a stick."""
        self.monitor(f"drive_add 0 if=none,id={name},file={image},format=raw")
        self.monitor(f"device_add usb-storage,bus=xhci.0,drive={name},id={name}-device")

    def unplug_usb_stick(self, name: str = "stick"):
        self.monitor(f"device_del {name}-device")

    def reboot(self):
        """A clean reboot, as the power user's Ctrl-Alt-Del: systemd stops the
        services (SIGTERM), unmounts /data and restarts the machine."""
        self.monitor("sendkey ctrl-alt-delete")

    def stop(self, timeout: float = 60.0) -> int | None:
        """Presses the power button and waits for a clean power-off; pulls the
        plug when the guest does not go down in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                self.monitor("system_powerdown")
                self.process.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(10)
        code, self.process = self.process.returncode, None
        return code

    def data_journal(self, target: Path) -> Path:
        """The box's journal, as text, read from its data partition once the
        machine is off (journald writes it to /data/log): what the services
        logged, which the serial console does not show."""
        raw = self.workdir / "disk.raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(self.overlay), str(raw)], check=True)
        try:
            table = json.loads(subprocess.run(["sfdisk", "--json", str(raw)], check=True,
                                              capture_output=True, text=True).stdout)
            data = table["partitiontable"]["partitions"][3]
            partition = self.workdir / "data.raw"
            subprocess.run(["dd", f"if={raw}", f"of={partition}", "bs=512", f"skip={data['start']}",
                            f"count={data['size']}", "conv=sparse", "status=none"], check=True)
            logs = self.workdir / "data-log"
            shutil.rmtree(logs, ignore_errors=True)
            logs.mkdir()
            subprocess.run(["debugfs", "-R", f"rdump /log {logs}", str(partition)],
                           check=True, capture_output=True)
            journals = sorted(logs.glob("log/journal/*"))
            text = subprocess.run(["journalctl", "--no-pager", "-o", "short-monotonic",
                                   *[f"--directory={j}" for j in journals]],
                                  capture_output=True, text=True).stdout if journals else ""
            target.write_text(text or "(no journal on /data)\n")
            partition.unlink()
            return target
        finally:
            raw.unlink(missing_ok=True)

    def urls(self) -> dict[str, str]:
        shown = {name: f"127.0.0.1:{port}" for name, port in self.ports.items()}
        shown["admin"] = f"https://127.0.0.1:{self.ports['https']}/"
        return shown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="x86_64", choices=("x86_64", "aarch64"))
    parser.add_argument("--image", type=Path)
    parser.add_argument("--memory", type=int, default=512, help="guest RAM in MB")
    parser.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
    parser.add_argument("--fresh", action="store_true",
                        help="start from the image's first boot (forget this machine's /data)")
    args = parser.parse_args(argv)
    workdir = TOP / "build" / f"run-{args.arch}"
    machine = Machine(workdir, args.arch, args.image, args.memory, args.accel)
    # Keeps /data between `make run`s until the image is rebuilt or --fresh.
    machine.prepare_overlay(fresh=args.fresh)
    print(f"gatebox {args.arch} on QEMU ({machine.accel}), {args.memory} MB; "
          f"Ctrl-A X quits, Ctrl-A C toggles the QEMU monitor")
    for name, guest in GUEST_PORTS.items():
        print(f"  {name:<10} guest port {guest:<4} -> 127.0.0.1:{machine.ports[name]}")
    print(f"  admin URL  {machine.urls()['admin']}\n", flush=True)
    return subprocess.call(machine.command("mon:stdio"))


if __name__ == "__main__":
    sys.exit(main())
