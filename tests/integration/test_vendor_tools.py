"""`gatebox-vendor keygen / issue / code` as the vendor runs them."""

import os
import stat
from pathlib import Path

from firmware.licensing import activate, active_softpaks
from firmware.licensing.verify import read

REPO = Path(__file__).resolve().parents[2]


def test_keygen_writes_a_private_key_only_its_owner_reads(gatebox_vendor, tmp_path):
    gatebox_vendor("keygen", "--out", str(tmp_path / "keys"), "--name", "vendor-2026")
    private, public = tmp_path / "keys/vendor-2026.key", tmp_path / "keys/vendor-2026.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    again = gatebox_vendor("keygen", "--out", str(tmp_path / "keys"), "--name", "vendor-2026", check=False)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr


def test_issue_prints_the_key_alone_on_its_last_line(gatebox_vendor, vendor, store, box_serial):
    result = gatebox_vendor("issue", "--key", str(vendor.private_path), "--serial", box_serial,
                            "--softpak", "mailserver=2099-12-31", "--softpak", "jukebox")
    last = result.stdout.rstrip("\n").splitlines()[-1]
    assert last.startswith("GATEBOX-") and " " not in last
    lic = read(last)
    assert lic.serial == box_serial
    assert lic.grants["jukebox"] is None and str(lic.grants["mailserver"]) == "2099-12-31"
    # The box takes the key for its Mail Server grant; jukebox waits for a firmware that has it.
    assert activate(store, last).not_installed == {"jukebox"}
    assert active_softpaks(store) == {"mailserver"}


def test_issue_rejects_a_bad_date(gatebox_vendor, vendor):
    result = gatebox_vendor("issue", "--key", str(vendor.private_path), "--serial", "S",
                            "--softpak", "mailserver=31.12.2027", check=False)
    assert result.returncode != 0 and "YYYY-MM-DD" in result.stderr


def test_no_private_key_ships_in_the_repository():
    skip = {".venv", ".git", "build", "__pycache__", ".pytest_cache"}
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            path = Path(folder) / name
            if path.suffix in (".key", ".pem") or name.endswith(".pub"):
                assert b"PRIVATE KEY" not in path.read_bytes(), path
