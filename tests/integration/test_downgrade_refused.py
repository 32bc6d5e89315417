"""RAUC itself refuses a bundle older than the running firmware: its
pre-install handler (system.conf), run by the root service, whoever asked
over D-Bus and whatever the upload page or the CLI checked. Root alone can
let one downgrade through."""

import os
import subprocess

import pytest

from firmware.system.update import downgrade_guard
from tests.integration.test_firmware_install import (  # noqa: F401 (fixtures)
    RaucService, can_mount_loop_devices, rauc_service_tools, session_bus)
from tests.support.bundles import Box, make_bundle, signing  # noqa: F401 (fixture)

BLANK_SLOT = b"\0" * 4 * 1024 * 1024


def test_the_guard_lets_newer_and_equal_through_and_refuses_older(tmp_path):
    assert downgrade_guard.decide("1.1.0", "1.0.0", tmp_path) is None
    assert downgrade_guard.decide("1.0.0", "1.0.0", tmp_path) is None
    assert "older than the running 1.0.0" in downgrade_guard.decide("0.9.9", "1.0.0", tmp_path)
    assert "no version" in downgrade_guard.decide(None, "1.0.0", tmp_path)


def test_an_allow_file_the_service_user_could_plant_is_not_taken(tmp_path):
    root_dir = tmp_path / "root"
    root_dir.mkdir(mode=0o777)
    root_dir.chmod(0o777)  # writable by others: anyone could have put the file there
    (root_dir / downgrade_guard.ALLOW_FILE).touch()
    assert downgrade_guard.decide("0.9.0", "1.0.0", root_dir) is not None


def rauc_install(box: Box, bundle, env) -> subprocess.CompletedProcess:
    """Straight to RAUC, past the firmware's own version check."""
    return subprocess.run(["rauc", "--conf", str(box.system_conf), "install", str(bundle)],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not can_mount_loop_devices(),
                    reason="needs root and loop devices (RAUC mounts bundles)")
def test_rauc_refuses_an_older_bundle_unless_root_allows_one(tmp_path, signing, session_bus):
    box = Box(tmp_path / "box", signing[0] / "ca.cert.pem")
    box.system_conf.write_text(box.system_conf.read_text().replace("bundle-formats=-plain\n", ""))
    older = make_bundle(tmp_path / "bundles", signing[0], version="0.9.0", bundle_format="plain")
    service = RaucService(box, "A", session_bus)
    try:
        refused = rauc_install(box, older, session_bus)
        assert refused.returncode != 0
        # RAUC reports only that its handler said no; the handler's reason goes to the log.
        assert "Pre-install handler error" in refused.stdout
        assert box.slot_b.read_bytes() == BLANK_SLOT

        # Root's own decision, in root's own directory: one downgrade goes through.
        root_dir = box.data / "root"
        root_dir.mkdir(mode=0o755, exist_ok=True)
        os.chmod(root_dir, 0o755)
        (root_dir / downgrade_guard.ALLOW_FILE).touch()
        allowed = rauc_install(box, older, session_bus)
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert box.slot_b.read_bytes() != BLANK_SLOT
        assert not (root_dir / downgrade_guard.ALLOW_FILE).exists()
    finally:
        service.stop()
