"""What a USB stick offers, scanned from a directory (no udev, no stick)."""

import json
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

from firmware.system.usb import offers
from firmware.system.usb.watch import is_usb_filesystem

ROOT = Path(__file__).resolve().parents[2]
KEY = "GATEBOX-ABCDE-FGHJK-MNPQR-STVWX-YZ012-3456*"


def stick(tmp_path):
    root = tmp_path / "stick"
    (root / "updates").mkdir(parents=True)
    (root / "updates" / "gatebox-x86_64-1.1.0.raucb").write_bytes(b"bundle bytes")
    (root / "office.lic").write_text(f"Your license key:\n\n{KEY}\n")
    (root / "gatebox-license-2027.txt").write_text(KEY.lower())
    (root / "ssh.key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")  # not a license
    (root / "holiday.jpg").write_bytes(b"\xff\xd8")
    (root / ".hidden.raucb").write_bytes(b"x")
    deep = root / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "buried.raucb").write_bytes(b"too deep to look at")
    return root


def test_scan_finds_bundles_and_license_key_files_only(tmp_path):
    found = offers.scan(stick(tmp_path), "sdb1")
    assert sorted((o.kind, o.name) for o in found) == [
        ("bundle", "updates/gatebox-x86_64-1.1.0.raucb"),
        ("license", "gatebox-license-2027.txt"),
        ("license", "office.lic")]
    licence = next(o for o in found if o.name == "office.lic")
    assert licence.preview == "GATEBOX-ABCDE…" and licence.device == "sdb1"
    assert offers.read_license_text(licence).strip().endswith(KEY)


def test_offers_are_recorded_for_the_web_ui_and_dropped_on_removal(tmp_path):
    data = tmp_path / "data"
    found = offers.scan(stick(tmp_path), "sdb1")
    offers.record(data, "sdb1", found)
    offers.record(data, "sdc", [])
    path = offers.offers_file(data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the watcher is root, the UI is not
    assert set(json.loads(path.read_text())) == {"sdb1", "sdc"}
    assert offers.find(data, found[0].id) == found[0]
    offers.drop(data, "sdb1")
    assert offers.all_offers(data) == [] and offers.find(data, found[0].id) is None
    assert not list(path.parent.glob(".*.new"))


def test_offer_ids_are_stable_per_device_and_file(tmp_path):
    root = stick(tmp_path)
    assert [o.id for o in offers.scan(root, "sdb1")] == [o.id for o in offers.scan(root, "sdb1")]
    assert {o.id for o in offers.scan(root, "sdb1")}.isdisjoint(o.id for o in offers.scan(root, "sdc1"))


def test_only_usb_filesystems_the_box_reads_are_mounted():
    def device(bus, fs, kind="partition"):
        properties = {"ID_BUS": bus, "ID_FS_TYPE": fs}
        return SimpleNamespace(get=properties.get, device_type=kind)

    assert is_usb_filesystem(device("usb", "vfat"))
    assert is_usb_filesystem(device("usb", "exfat", "disk"))  # a stick without a partition table
    assert not is_usb_filesystem(device("ata", "ext4"))  # the box's own disk
    assert not is_usb_filesystem(device("usb", "ntfs"))
    assert not is_usb_filesystem(device("usb", "crypto_LUKS"))


def test_signature_files_on_a_stick_are_offered_for_the_antivirus_softpak(tmp_path):
    root = tmp_path / "stick"
    (root / "clamav").mkdir(parents=True)
    for name in ("daily.cvd", "main.cld", "office.cud", "daily-27501.cdiff", "notes.txt"):
        (root / "clamav" / name).write_bytes(b"ClamAV-VDB:" if name != "notes.txt" else b"x")
    found = offers.scan(root, "sdb1")
    assert sorted((o.kind, o.name) for o in found) == [
        ("signatures", "clamav/daily-27501.cdiff"), ("signatures", "clamav/daily.cvd"),
        ("signatures", "clamav/main.cld"), ("signatures", "clamav/office.cud")]
    assert {o.kind for o in found} <= set(offers.SOFTPAK_KINDS)


def test_the_watcher_service_runs_the_module_alone_not_every_command():
    # It stays resident for as long as the box runs: the `gatebox` command
    # would load every command's modules with it (settings, licensing, mail).
    unit = (ROOT / "rootfs-overlay/usr/lib/systemd/system/gatebox-usb.service").read_text()
    [start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert start.split() == ["ExecStart=/usr/bin/gatebox-usb-watch", "--data", "/data"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["gatebox-usb-watch"] == "firmware.system.usb.watch:main"
    shown = subprocess.run(
        # What the console script does: import the module, call main.
        [sys.executable, "-c", "import sys\nfrom firmware.system.usb.watch import main\n"
         "try:\n    main()\nexcept SystemExit:\n    pass\nprint(' '.join(sorted(sys.modules)))",
         "--help"],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "--data DATA" in shown.stdout, shown.stderr
    modules = shown.stdout.split()
    heavy = [m for m in modules if m.split(".")[0] in ("click", "sqlite_utils", "cryptography")
             or m.startswith(("firmware.config", "firmware.cli", "firmware.mail"))]
    assert "firmware.system.usb.watch" in modules and heavy == []
