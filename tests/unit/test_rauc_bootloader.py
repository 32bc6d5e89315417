"""RAUC's custom boot loader backend (rootfs-overlay/usr/lib/gatebox/rauc-bootloader)
on a real GRUB environment block made by bootenv.py."""

import os
import subprocess

from tests.support.bundles import BOOTENV, BOOTLOADER, write_grubenv


def backend(grubenv, *args, cmdline=None):
    env = {**os.environ, "GATEBOX_GRUBENV": str(grubenv)}
    if cmdline:
        env["GATEBOX_CMDLINE"] = str(cmdline)
    return subprocess.run([str(BOOTLOADER), *args], capture_output=True, text=True, env=env)


def values(grubenv):
    out = subprocess.run(["python3", str(BOOTENV), str(grubenv)], capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def test_fresh_image_boots_a_and_only_a_is_good(tmp_path):
    env = write_grubenv(tmp_path / "grubenv")
    assert backend(env, "get-primary").stdout.strip() == "A"
    assert backend(env, "get-state", "A").stdout.strip() == "good"
    assert backend(env, "get-state", "B").stdout.strip() == "bad"


def test_set_primary_puts_the_slot_first_and_makes_it_bootable(tmp_path):
    env = write_grubenv(tmp_path / "grubenv", MACHINE_ID="0123456789abcdef")
    assert backend(env, "set-primary", "B").returncode == 0
    assert values(env) == {"ORDER": "B A", "A_OK": "1", "A_TRY": "0", "B_OK": "1", "B_TRY": "0",
                           "MACHINE_ID": "0123456789abcdef"}
    assert backend(env, "get-primary").stdout.strip() == "B"
    assert env.stat().st_size == 1024, "GRUB rewrites the block in place: its size must not change"


def test_a_slot_whose_try_never_came_up_healthy_is_bad(tmp_path):
    # GRUB set B_TRY=1 when it booted B; the health check never cleared it.
    env = write_grubenv(tmp_path / "grubenv", ORDER="B A", B_OK="1", B_TRY="1")
    assert backend(env, "get-state", "B").stdout.strip() == "bad"
    assert backend(env, "get-primary").stdout.strip() == "B"


def test_set_state_marks_good_and_bad(tmp_path):
    env = write_grubenv(tmp_path / "grubenv", B_OK="1", B_TRY="1")
    backend(env, "set-state", "B", "good")
    assert (values(env)["B_OK"], values(env)["B_TRY"]) == ("1", "0")
    backend(env, "set-state", "A", "bad")
    assert (values(env)["A_OK"], values(env)["A_TRY"]) == ("0", "0")
    assert backend(env, "get-state", "A").stdout.strip() == "bad"


def test_get_current_reads_the_kernel_command_line(tmp_path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=PARTUUID=6a7eb0c5-03 ro rauc.slot=B console=ttyS0\n")
    assert backend(tmp_path / "grubenv", "get-current", cmdline=cmdline).stdout.strip() == "B"


def test_unknown_slots_and_requests_are_refused(tmp_path):
    env = write_grubenv(tmp_path / "grubenv")
    before = env.read_bytes()
    for args in (("set-primary", "C"), ("set-state", "A", "maybe"), ("frobnicate",), ()):
        result = backend(env, *args)
        assert result.returncode == 1 and result.stderr.startswith("rauc-bootloader: "), args
    assert env.read_bytes() == before
