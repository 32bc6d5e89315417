"""`gatebox firmware ...` in a subprocess, with real bundles and a box's
files (system.conf, grubenv, kernel command line) in a temporary directory."""

import subprocess
import sys

from tests.support.bundles import (bad_bundles, bundles, signing, update_box,  # noqa: F401 (fixtures)
                                   write_grubenv)
from tests.support.licensing import REPO


def gatebox(box, *args, stdin=""):
    import os
    return subprocess.run([sys.executable, "-m", "firmware.cli", "--data", str(box.data), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120, input=stdin,
                          env={**os.environ, **box.environment()})


def test_status_names_the_running_slot_and_the_empty_one(update_box):
    result = gatebox(update_box, "firmware", "status")
    assert result.returncode == 0, result.stderr
    assert "running: gatebox 1.0.0 in slot A (rootfs.0)" in result.stdout
    assert "slot B: version unknown (inactive, not marked good)" in result.stdout


def test_status_says_when_an_update_was_abandoned(update_box):
    write_grubenv(update_box.grubenv, ORDER="B A", B_OK="1", B_TRY="1")
    (update_box.data / "firmware").mkdir()
    (update_box.data / "firmware/slots.json").write_text('{"B": "1.1.0"}')
    result = gatebox(update_box, "firmware", "status")
    assert ("The update to version 1.1.0 in slot B did not come up healthy; the box went back "
            "to slot A (version 1.0.0).") in result.stdout


def test_install_refuses_bad_bundles_with_their_message_and_exit_status(update_box, bad_bundles):
    before = update_box.snapshot()
    expected = {"tampered": "gatebox: The bundle's content was changed after it was signed",
                "truncated": "gatebox: This is not a complete update bundle",
                "stranger": "gatebox: The bundle is not signed by a key this box trusts",
                "aarch64": "gatebox: This bundle is for gatebox-aarch64, this box is gatebox-x86_64",
                "older": "gatebox: Version 0.9.0 is older than the running firmware 1.0.0"}
    for which, message in expected.items():
        path = bad_bundles[which]
        result = gatebox(update_box, "firmware", "install", str(path), "--yes")
        assert result.returncode == 1, (path, result.stdout, result.stderr)
        assert result.stderr.startswith(message), result.stderr
        assert "Traceback" not in result.stderr
    assert update_box.snapshot() == before


def test_install_asks_first_and_a_no_writes_nothing(update_box, bundles):
    before = update_box.snapshot()
    result = gatebox(update_box, "firmware", "install", str(bundles["newer"]), stdin="n\n")
    assert "version 1.1.0 for gatebox-x86_64, signed by" in result.stdout
    assert "Install version 1.1.0 into the inactive slot?" in result.stdout
    assert result.returncode == 1 and "Aborted" in result.stderr
    assert update_box.snapshot() == before


def test_rollback_is_refused_while_the_other_slot_holds_nothing_bootable(update_box):
    result = gatebox(update_box, "firmware", "rollback")
    assert result.returncode == 1
    assert result.stderr.startswith("gatebox: Slot B holds no firmware known to boot (never installed)")


def test_reboot_leaves_a_request_for_the_root_unit(update_box):
    result = gatebox(update_box, "firmware", "reboot")
    assert result.returncode == 0 and (update_box.data / "requests/reboot").is_file()
