"""What System > Firmware says about the slots, from a real grubenv and a
kernel command line: the running slot, a pending update, an abandoned one."""

from firmware.system.update import status
from firmware.system.update.slot_state import record_version
from firmware.system.update.versions import is_newer
from tests.support.bundles import Box, write_grubenv


def box(tmp_path, booted="A", **grubenv):
    made = Box(tmp_path / "box", keyring=tmp_path / "no-keyring.pem", booted=booted)
    write_grubenv(made.grubenv, **grubenv)
    return made


def test_fresh_box_runs_slot_a_and_slot_b_is_empty(tmp_path):
    current = status(box(tmp_path).runtime())
    assert (current.booted.bootname, current.booted.version, current.booted.good) == ("A", "1.0.0", True)
    assert (current.other.bootname, current.other.version, current.other.good) == ("B", None, False)
    assert current.abandoned is None and current.pending is None and current.problem is None


def test_an_installed_update_waits_for_the_reboot(tmp_path):
    made = box(tmp_path, ORDER="B A", B_OK="1", B_TRY="0")
    record_version(made.runtime(), "B", "1.1.0")
    current = status(made.runtime())
    assert current.pending.startswith("Version 1.1.0 is installed in slot B")
    assert current.abandoned is None


def test_an_update_that_never_came_up_healthy_is_reported_as_abandoned(tmp_path):
    # B was tried (GRUB set B_TRY=1), never marked good, and GRUB went back to A.
    made = box(tmp_path, booted="A", ORDER="B A", B_OK="1", B_TRY="1")
    record_version(made.runtime(), "B", "1.1.0")
    current = status(made.runtime())
    assert current.abandoned == ("The update to version 1.1.0 in slot B did not come up healthy; "
                                 "the box went back to slot A (version 1.0.0).")
    assert current.pending is None


def test_an_update_marked_bad_is_abandoned_too(tmp_path):
    made = box(tmp_path, booted="A", ORDER="B A", B_OK="0", B_TRY="0")
    assert "did not come up healthy" in status(made.runtime()).abandoned


def test_the_new_slot_on_its_trial_boot_is_not_abandoned(tmp_path):
    made = box(tmp_path, booted="B", ORDER="B A", B_OK="1", B_TRY="1")
    current = status(made.runtime())
    assert current.booted.bootname == "B" and not current.booted.good
    assert current.abandoned is None and current.pending is None
    assert current.other.bootname == "A" and current.other.good


def test_after_a_failed_install_the_box_stays_on_its_slot(tmp_path):
    # RAUC marks the target bad before writing; a failed write leaves it so.
    current = status(box(tmp_path, ORDER="A B", B_OK="0").runtime())
    assert current.abandoned is None and current.pending is None


def test_versions_compare_as_numbers():
    assert is_newer("1.10.0", "1.9.9")
    assert is_newer("1.0", "0.9.9")
    assert is_newer("1.2.0", "1.2.0rc1")
    assert not is_newer("1.2.0", "1.2")
    assert not is_newer("0.9.0", "1.0.0")
