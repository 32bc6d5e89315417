"""Files written so that a power cut leaves the old content or the new, and
root's files written inside a data partition the service user owns: a
symlink planted at each name is replaced or refused, never followed."""

import importlib.machinery
import importlib.util
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from firmware.system import durable, tls
from firmware.system.update import Runtime, progress
from firmware.system.update.rollback import REBOOT_REQUEST, request_reboot
from firmware.system.update.slot_state import record_version, recorded_versions
from firmware.system.usb import offers


@pytest.fixture
def victim(tmp_path):
    """A file outside the data directory that a planted symlink points at."""
    path = tmp_path / "elsewhere" / "victim"
    path.parent.mkdir()
    path.write_text("untouched\n")
    return path


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_write_atomically_replaces_the_file_whole_with_the_mode_asked(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    durable.write_atomically(target, b"new content", 0o640)
    assert target.read_bytes() == b"new content"
    assert mode(target) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_symlink_at_the_name_is_replaced_not_followed(tmp_path, victim):
    target = tmp_path / "state.json"
    target.symlink_to(victim)
    durable.write_json_atomically(target, {"a": 1})
    assert victim.read_text() == "untouched\n"
    assert not target.is_symlink() and json.loads(target.read_text()) == {"a": 1}


def test_a_symlinked_directory_is_refused(tmp_path, victim):
    (tmp_path / "usb").symlink_to(victim.parent, target_is_directory=True)
    with pytest.raises(OSError):
        durable.write_atomically(tmp_path / "usb" / "victim", "x")
    assert victim.read_text() == "untouched\n"


def test_a_directory_others_can_write_is_refused_for_a_trusted_write(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(durable.UntrustedDirectory):
        durable.write_atomically(shared / "boot-good", "x", trusted_owner=os.geteuid())
    assert list(shared.iterdir()) == []


def test_root_directory_moves_a_planted_symlink_aside(tmp_path, victim, caplog):
    planted = tmp_path / "root"
    planted.symlink_to(victim.parent, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="gatebox"):
        made = durable.root_directory(planted)
    assert made.is_dir() and not made.is_symlink() and mode(made) == 0o755
    assert os.lstat(made).st_uid == os.geteuid()
    assert "moved it to" in caplog.text
    assert victim.read_text() == "untouched\n"


def test_root_directory_takes_back_a_directory_others_can_write(tmp_path):
    planted = tmp_path / "root"
    planted.mkdir()
    planted.chmod(0o777)
    (planted / "boot-good").write_text("planted")
    made = durable.root_directory(planted)
    assert mode(made) == 0o755 and list(made.iterdir()) == []
    assert [p.name.startswith("root.untrusted-") for p in tmp_path.iterdir()].count(True) == 1


@pytest.mark.parametrize("plant_at", ["file", "directory"])
def test_usb_offers_never_write_through_a_planted_symlink(tmp_path, victim, plant_at):
    data = tmp_path / "data"
    data.mkdir()
    if plant_at == "directory":
        offers.root_dir(data).symlink_to(victim.parent, target_is_directory=True)
    else:
        offers.root_dir(data).mkdir()
        offers.offers_file(data).symlink_to(victim)
    offers.record(data, "sdb1", [])
    assert victim.read_text() == "untouched\n"
    assert offers.load(data) == {"sdb1": []}
    assert mode(offers.offers_file(data)) == 0o644 and mode(offers.root_dir(data)) == 0o755


def test_firmware_state_files_never_write_through_a_planted_symlink(tmp_path, victim):
    runtime = Runtime(data=tmp_path / "data")
    runtime.firmware_dir.mkdir(parents=True)
    runtime.requests_dir.mkdir(parents=True)
    for path in (runtime.progress_file, runtime.slot_versions_file,
                 runtime.requests_dir / REBOOT_REQUEST):
        path.symlink_to(victim)
    progress.report(runtime, "installing", 10, "Checking")
    record_version(runtime, "B", "1.1.0")
    request_reboot(runtime)
    assert victim.read_text() == "untouched\n"
    assert progress.read(runtime)["percent"] == 10
    assert recorded_versions(runtime) == {"B": "1.1.0"}
    assert not (runtime.requests_dir / REBOOT_REQUEST).is_symlink()


# ---- the certificate: made again when a power cut damaged it ------------------
@pytest.mark.parametrize("damage", ["empty certificate", "empty key", "garbage key",
                                    "key of another pair"])
def test_a_damaged_certificate_is_made_again_with_a_log_line(tmp_path, caplog, damage):
    cert, key = tls.ensure_certificate(tmp_path, "gatebox.test")
    if damage == "empty certificate":
        cert.write_bytes(b"")
    elif damage == "empty key":
        key.write_bytes(b"")
    elif damage == "garbage key":
        key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n")
    else:
        other = tls.ensure_certificate(tmp_path / "other", "other.test")[1]
        key.write_bytes(other.read_bytes())
    assert tls.pair_problem(cert, key) is not None
    with caplog.at_level(logging.WARNING, logger="gatebox"):
        tls.ensure_certificate(tmp_path, "gatebox.test")
    assert "making a new self-signed one" in caplog.text
    assert tls.pair_problem(cert, key) is None
    assert mode(key) == 0o600
    tls.server_context(tmp_path)  # loads: what crash-looped before


def test_a_good_certificate_is_kept(tmp_path, caplog):
    cert, _key = tls.ensure_certificate(tmp_path, "gatebox.test")
    before = cert.read_bytes()
    with caplog.at_level(logging.WARNING, logger="gatebox"):
        tls.ensure_certificate(tmp_path, "gatebox.test")
    assert cert.read_bytes() == before and caplog.text == ""


def test_create_once_keeps_what_is_there_and_remakes_an_empty_file(tmp_path, victim):
    path = tmp_path / "secret"
    assert durable.create_once(path, b"first") == b"first"
    assert durable.create_once(path, b"second") == b"first"
    assert mode(path) == 0o600
    path.write_bytes(b"")  # what a power cut after the create left behind before
    assert durable.create_once(path, b"third") == b"third"
    path.unlink()
    path.symlink_to(victim)
    with pytest.raises(OSError):
        durable.create_once(path, b"fourth")
    assert victim.read_text() == "untouched\n"


# ---- the health check (root): its marker lands in root's own directory --------
HEALTH_CHECK = Path(__file__).resolve().parents[2] / "rootfs-overlay/usr/lib/gatebox/health-check"


@pytest.fixture
def health_check(monkeypatch):
    monkeypatch.syspath_prepend(str(HEALTH_CHECK.parent))  # its bootenv module
    loader = importlib.machinery.SourceFileLoader("gatebox_health_check", str(HEALTH_CHECK))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


@pytest.mark.parametrize("plant_at", ["directory", "file"])
def test_the_health_check_marker_never_follows_a_planted_symlink(tmp_path, victim, health_check,
                                                                  monkeypatch, plant_at):
    root_dir = tmp_path / "data" / "root"
    root_dir.parent.mkdir()
    if plant_at == "directory":
        root_dir.symlink_to(victim.parent, target_is_directory=True)
    else:
        root_dir.mkdir()
        (root_dir / "boot-good").symlink_to(victim)
    monkeypatch.setattr(health_check, "ROOT_DIR", str(root_dir))
    health_check.write_marker({"slot": "A"})
    assert victim.read_text() == "untouched\n"
    assert json.loads((root_dir / "boot-good").read_text()) == {"slot": "A"}
    assert not root_dir.is_symlink() and mode(root_dir) == 0o755
