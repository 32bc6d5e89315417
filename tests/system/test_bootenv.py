"""The boot environment helper must write blocks GRUB accepts: GRUB rewrites
the 1024-byte file in place at boot, and RAUC edits it with grub-editenv."""

import importlib.util
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import require

TOP = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bootenv", TOP / "rootfs-overlay/usr/lib/gatebox/bootenv.py")
bootenv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bootenv)

@pytest.fixture
def grub_editenv():
    require("grub-editenv")


def test_a_new_block_is_exactly_1024_bytes_and_reads_back(tmp_path):
    env = tmp_path / "grubenv"
    bootenv.update(str(env), {"ORDER": "A B", "A_OK": "1", "A_TRY": "0"})
    assert env.stat().st_size == 1024
    assert bootenv.read(str(env)) == {"ORDER": "A B", "A_OK": "1", "A_TRY": "0"}


def test_marking_a_slot_good_keeps_the_other_variables(tmp_path):
    env = tmp_path / "grubenv"
    bootenv.update(str(env), {"ORDER": "B A", "A_OK": "1", "B_OK": "1", "B_TRY": "1"})
    bootenv.update(str(env), {"B_TRY": "0"})
    assert bootenv.read(str(env)) == {"ORDER": "B A", "A_OK": "1", "B_OK": "1", "B_TRY": "0"}


def test_grub_editenv_reads_what_bootenv_writes(tmp_path, grub_editenv):
    env = tmp_path / "grubenv"
    bootenv.update(str(env), {"ORDER": "A B", "A_OK": "1", "MACHINE_ID": "0" * 32})
    listed = subprocess.run(["grub-editenv", str(env), "list"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    assert listed == ["ORDER=A B", "A_OK=1", "MACHINE_ID=" + "0" * 32]


def test_bootenv_reads_what_grub_editenv_writes(tmp_path, grub_editenv):
    env = tmp_path / "grubenv"
    subprocess.run(["grub-editenv", str(env), "create"], check=True)
    subprocess.run(["grub-editenv", str(env), "set", "A_OK=0", "A_TRY=1"], check=True)
    assert bootenv.read(str(env)) == {"A_OK": "0", "A_TRY": "1"}


def test_a_full_block_is_refused(tmp_path):
    with pytest.raises(ValueError, match="full"):
        bootenv.update(str(tmp_path / "grubenv"), {"X": "y" * 1100})
