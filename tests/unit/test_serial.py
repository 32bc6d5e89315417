"""The serial-number rule against fake sysfs trees."""

import os

import pytest

from firmware.licensing import serial


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv("GATEBOX_SERIAL", raising=False)


def make_root(tmp_path, dmi=None, interfaces=(), machine_id=None):
    """interfaces: (name, mac, virtual, addr_assign_type)."""
    root = tmp_path / "root"
    if dmi is not None:
        (root / "sys/class/dmi/id").mkdir(parents=True)
        (root / "sys/class/dmi/id/product_serial").write_text(dmi + "\n")
    (root / "sys/class/net").mkdir(parents=True)
    for name, mac, virtual, assign in interfaces:
        parent = root / ("sys/devices/virtual/net" if virtual else "sys/devices/pci0000:00/0000:00:03.0/net")
        device = parent / name
        device.mkdir(parents=True)
        (device / "address").write_text(mac + "\n")
        (device / "addr_assign_type").write_text(f"{assign}\n")
        os.symlink(device, root / "sys/class/net" / name)
    if machine_id is not None:
        (root / "etc").mkdir(parents=True)
        (root / "etc/machine-id").write_text(machine_id + "\n")
    return root


NICS = [
    ("docker0", "02:42:ac:11:00:02", True, 3),
    ("enp0s3", "08:00:27:aa:bb:cc", False, 0),
    ("enp0s8", "08:00:27:dd:ee:ff", False, 0),
    ("lo", "00:00:00:00:00:00", True, 0),
]
MACHINE_ID = "0123456789abcdef0123456789abcdef"


def test_dmi_serial_first(tmp_path):
    root = make_root(tmp_path, dmi="  PF3XK2 9A ", interfaces=NICS, machine_id=MACHINE_ID)
    assert serial.box_serial(root) == "PF3XK2-9A"


@pytest.mark.parametrize("junk", ["To be filled by O.E.M.", "0", "None", "", "Default string",
                                  "System Serial Number", "00000000"])
def test_placeholder_dmi_falls_back_to_mac(tmp_path, junk):
    root = make_root(tmp_path, dmi=junk, interfaces=NICS, machine_id=MACHINE_ID)
    assert serial.box_serial(root) == "MAC-080027AABBCC"


def test_virtual_loopback_random_and_local_macs_are_skipped(tmp_path):
    root = make_root(tmp_path, interfaces=[
        ("aa-virtual", "08:00:27:00:00:01", True, 0),
        ("bb-random", "08:00:27:00:00:02", False, 1),
        ("cc-local", "0a:00:27:00:00:03", False, 0),
        ("lo", "00:00:00:00:00:00", False, 0),
        ("zz-real", "08:00:27:00:00:04", False, 0),
    ], machine_id=MACHINE_ID)
    assert serial.box_serial(root) == "MAC-080027000004"


def test_machine_id_last_and_not_revealed(tmp_path):
    root = make_root(tmp_path, interfaces=[("lo", "00:00:00:00:00:00", True, 0)], machine_id=MACHINE_ID)
    value = serial.box_serial(root)
    assert value.startswith("MID-") and MACHINE_ID[:8].upper() not in value
    assert serial.box_serial(root) == value


def test_nothing_usable(tmp_path):
    with pytest.raises(serial.NoSerial):
        serial.box_serial(make_root(tmp_path))


def test_environment_override(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEBOX_SERIAL", "DEV-BOX-7")
    assert serial.box_serial(make_root(tmp_path, dmi="PF3XK2")) == "DEV-BOX-7"


def test_this_machine_has_a_stable_serial():
    try:
        first = serial.box_serial()
    except serial.NoSerial:
        pytest.skip("this machine has no DMI serial, permanent MAC or machine-id")
    assert serial.box_serial() == first
