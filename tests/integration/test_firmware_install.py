"""A real installation on this host: the RAUC service on a private D-Bus
bus, two slot files, the custom boot loader backend on a grubenv file. The
host kernel has no device-mapper, so this uses plain-format bundles (the box
takes verity ones only); everything else is the box's path: `rauc install`,
its progress, the slot write, the boot loader flags, status and rollback."""

import os
import subprocess
import time

import pytest

from firmware.system.update import RollbackRefused, install, rollback, status
from firmware.system.update import progress as install_progress
from tests.support.bundles import make_bundle, signing, write_grubenv  # noqa: F401 (fixture)
from tests.support.bundles import Box
from tests.support.tools import require


def can_mount_loop_devices() -> bool:
    return os.geteuid() == 0 and os.path.exists("/dev/loop-control")


# A container without loop devices cannot mount a bundle, whatever is installed.
pytestmark = pytest.mark.skipif(not can_mount_loop_devices(),
                                reason="needs root and loop devices (RAUC mounts bundles)")


@pytest.fixture(scope="module", autouse=True)
def rauc_service_tools():
    require("rauc", "dbus-daemon")


class RaucService:
    def __init__(self, box: Box, booted: str, env: dict):
        box.cmdline.write_text(f"ro rauc.slot={booted}\n")
        (box.dir / "mnt").mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            ["rauc", "--conf", str(box.system_conf), "--mount", str(box.dir / "mnt"),
             f"--override-boot-slot={booted}", "service"],
            env={**env, "GATEBOX_GRUBENV": str(box.grubenv)},
            stdout=open(box.dir / f"service-{booted}.log", "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            probe = subprocess.run(["rauc", "--conf", str(box.system_conf), "status"], env=env,
                                   capture_output=True)
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError("the RAUC service did not answer")

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def session_bus(monkeypatch):
    daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    address = daemon.stdout.readline().strip()
    # RAUC talks to the session bus instead of the system bus when told so.
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    monkeypatch.setenv("DBUS_STARTER_BUS_TYPE", "session")
    yield dict(os.environ)
    daemon.terminate()
    daemon.wait(10)


def test_install_writes_the_inactive_slot_boots_it_next_and_rollback_goes_back(
        tmp_path, signing, session_bus):
    box = Box(tmp_path / "box", signing[0] / "ca.cert.pem")
    conf = box.system_conf.read_text().replace("bundle-formats=-plain\n", "")
    box.system_conf.write_text(conf)
    bundle = make_bundle(tmp_path / "bundles", signing[0], version="1.1.0", bundle_format="plain")
    image = subprocess.run(["rauc", "extract", "--keyring", str(signing[0] / "ca.cert.pem"),
                            str(bundle), str(tmp_path / "extracted")], capture_output=True)
    assert image.returncode == 0, image.stderr
    rootfs = (tmp_path / "extracted" / "rootfs.img").read_bytes()

    service = RaucService(box, "A", session_bus)
    try:
        # Read through `rauc status`, as the web UI's user does on the box.
        runtime = box.runtime(grubenv=None)
        steps = []
        install(runtime, bundle, on_progress=lambda percent, message: steps.append((percent, message)))
        assert steps[-1][0] == 100 and [p for p, _ in steps] == sorted(p for p, _ in steps)
        assert any("Checking bundle" in message for _, message in steps)
        assert box.slot_b.read_bytes()[:len(rootfs)] == rootfs
        assert box.slot_a.read_bytes() == b"\0" * 4 * 1024 * 1024
        assert install_progress.read(runtime)["state"] == "installed"
        current = status(runtime)
        assert current.state.primary == "B" and current.other.good
        assert current.pending.startswith("Version 1.1.0 is installed in slot B")
    finally:
        service.stop()

    # The box rebooted into B, which the health check marked good.
    write_grubenv(box.grubenv, ORDER="B A", A_OK="1", A_TRY="0", B_OK="1", B_TRY="0")
    box.version_file.write_text("1.1.0\n")
    service = RaucService(box, "B", session_bus)
    try:
        runtime = box.runtime(grubenv=None)
        current = status(runtime)
        # The factory slot, which RAUC never wrote, still shows its version.
        assert current.other.bootname == "A" and current.other.version == "1.0.0"
        assert "Slot A (version 1.0.0)" in rollback(runtime)
        current = status(runtime)
        assert current.state.primary == "A" and current.booted.bootname == "B"
        # A not marked good cannot be gone back to.
        write_grubenv(box.grubenv, ORDER="B A", A_OK="0")
        with pytest.raises(RollbackRefused):
            rollback(runtime)
    finally:
        service.stop()
