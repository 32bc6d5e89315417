"""Real RAUC update bundles for tests: signing CAs made with openssl at test
time (qemu/dev-keys.sh; no private key lives in the repository), bundles made
with `rauc bundle`, and a box runtime (system.conf, kernel command line,
grubenv, stamped version) in a temporary directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .tools import require

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "rootfs-overlay"
BOOTENV = OVERLAY / "usr/lib/gatebox/bootenv.py"
BOOTLOADER = OVERLAY / "usr/lib/gatebox/rauc-bootloader"
RUNNING_VERSION = "1.0.0"


def need_tools():
    require("rauc", "mksquashfs", "openssl")


def make_keys(directory: Path, name: str) -> Path:
    subprocess.run([str(REPO / "qemu/dev-keys.sh"), str(directory)], check=True,
                   capture_output=True, env={"PATH": "/usr/bin:/bin", "GATEBOX_KEYS_NAME": name})
    return directory


def make_bundle(work: Path, keys: Path, *, version: str, compatible: str = "gatebox-x86_64",
                bundle_format: str = "verity", payload_bytes: int = 64 * 1024) -> Path:
    """A bundle whose root slot image is a small squashfs of random data."""
    name = f"{compatible}-{version}-{bundle_format}-{keys.name}"
    root, content = work / f"{name}.root", work / f"{name}.content"
    root.mkdir(parents=True)
    content.mkdir()
    (root / "etc").mkdir()
    (root / "etc/version").write_text(version)
    (root / "payload").write_bytes(Path("/dev/urandom").open("rb").read(payload_bytes))
    subprocess.run(["mksquashfs", str(root), str(content / "rootfs.img"), "-quiet", "-noappend",
                    "-no-progress"], check=True, capture_output=True)
    (content / "manifest.raucm").write_text(
        f"[update]\ncompatible={compatible}\nversion={version}\n\n"
        f"[bundle]\nformat={bundle_format}\n\n[image.rootfs]\nfilename=rootfs.img\n")
    bundle = work / f"{name}.raucb"
    subprocess.run(["rauc", "bundle", "--cert", str(keys / "signing.cert.pem"), "--key",
                    str(keys / "signing.key.pem"), str(content), str(bundle)],
                   check=True, capture_output=True)
    return bundle


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def write_grubenv(path: Path, **values) -> Path:
    assignments = [f"{key}={value}" for key, value in
                   {"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0",
                    **values}.items()]
    subprocess.run(["python3", str(BOOTENV), str(path), *assignments], check=True,
                   capture_output=True)
    return path


class Box:
    """The files the update machinery reads on a box, in a directory."""

    def __init__(self, directory: Path, keyring: Path, booted: str = "A",
                 compatible: str = "gatebox-x86_64"):
        self.dir = directory
        self.data = directory / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.slot_a, self.slot_b = directory / "slotA.img", directory / "slotB.img"
        for slot in (self.slot_a, self.slot_b):
            slot.write_bytes(b"\0" * 4 * 1024 * 1024)
        conf = (OVERLAY / "etc/rauc/system.conf").read_text()
        conf = (conf.replace("compatible=gatebox-x86_64", f"compatible={compatible}")
                .replace("/etc/rauc/keyring.pem", str(keyring))
                .replace("data-directory=/data/root/rauc", f"data-directory={self.data / 'root' / 'rauc'}")
                .replace("/usr/lib/gatebox/rauc-bootloader", str(BOOTLOADER))
                .replace("/usr/lib/gatebox/rauc-pre-install", str(self._pre_install_handler()))
                .replace("/dev/disk/by-partuuid/6a7eb0c5-02", str(self.slot_a))
                .replace("/dev/disk/by-partuuid/6a7eb0c5-03", str(self.slot_b)))
        self.system_conf = directory / "system.conf"
        self.system_conf.write_text(conf)
        self.cmdline = directory / "cmdline"
        self.cmdline.write_text(f"root=PARTUUID=6a7eb0c5-02 ro rauc.slot={booted} console=ttyS0\n")
        self.grubenv = write_grubenv(directory / "grubenv")
        self.version_file = directory / "version"
        self.version_file.write_text(RUNNING_VERSION + "\n")

    def _pre_install_handler(self) -> Path:
        """The box's handler runs the guard in the image's venv; here, in this one."""
        handler = self.dir / "rauc-pre-install"
        handler.write_text(f"#!/bin/sh\nexport GATEBOX_VERSION_FILE={self.dir / 'version'} "
                           f"GATEBOX_ROOT_DIR={self.data / 'root'}\n"
                           f"exec {sys.executable} -m firmware.system.update.downgrade_guard\n")
        handler.chmod(0o755)
        return handler

    def runtime(self, **overrides):
        from firmware.system.update import Runtime
        fields = dict(data=self.data, system_conf=self.system_conf, cmdline=self.cmdline,
                      grubenv=self.grubenv, version_file=self.version_file)
        return Runtime(**{**fields, **overrides})

    def environment(self) -> dict:
        """The same paths for a `gatebox` subprocess."""
        return {"GATEBOX_RAUC_CONF": str(self.system_conf), "GATEBOX_CMDLINE": str(self.cmdline),
                "GATEBOX_GRUBENV": str(self.grubenv), "GATEBOX_VERSION_FILE": str(self.version_file)}

    def snapshot(self) -> dict:
        """Every file under the box directory with its size and content hash."""
        import hashlib
        return {str(p.relative_to(self.dir)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def signing(tmp_path_factory):
    """(trusted keys, keys of another CA): made once per test session."""
    need_tools()
    base = tmp_path_factory.mktemp("update-keys")
    return make_keys(base / "trusted", "gatebox test"), make_keys(base / "stranger", "someone else")


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, signing):
    """The bundles the refusal tests need, built once per session."""
    trusted, stranger = signing
    work = tmp_path_factory.mktemp("bundles")
    return {
        "newer": make_bundle(work, trusted, version="1.1.0"),
        "older": make_bundle(work, trusted, version="0.9.0"),
        "same": make_bundle(work, trusted, version=RUNNING_VERSION),
        "aarch64": make_bundle(work, trusted, version="1.1.0", compatible="gatebox-aarch64"),
        "stranger": make_bundle(work, stranger, version="1.1.0"),
    }


@pytest.fixture
def update_box(tmp_path, signing):
    return Box(tmp_path / "box", signing[0] / "ca.cert.pem")


@pytest.fixture
def bad_bundles(bundles, tmp_path):
    """One bundle for each refusal: changed payload, cut short, signed by a
    stranger, for another architecture, older than the running firmware."""
    tampered = tmp_path / "tampered.raucb"
    shutil.copy(bundles["newer"], tampered)
    flip_byte(tampered, 5000)  # inside the payload, which the signature covers only by hash
    cut = tmp_path / "cut.raucb"
    cut.write_bytes(bundles["newer"].read_bytes()[:20000])
    return {"tampered": tampered, "truncated": cut, "stranger": bundles["stranger"],
            "aarch64": bundles["aarch64"], "older": bundles["older"]}
