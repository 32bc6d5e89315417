"""A booted gatebox image under QEMU, one per test module, driven only from
outside through its forwarded loopback ports (qemu/boot.py)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "qemu"))
import boot  # noqa: E402

ARTIFACTS = TOP / "test-artifacts" / "system"
# The guest reaches the host's loopback at this address (QEMU user networking).
HOST_FROM_GUEST = "10.0.2.2"


def image_or_skip(arch: str = "x86_64") -> Path:
    image = boot.image_path(arch)
    if not image.exists():
        pytest.skip(f"{image} is missing: `make image` builds it (`make test` does)")
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is not installed (`make deps`)")
    return image


def http_ui_built_in() -> bool:
    """The image serves HTTPS when the firmware's `gatebox run` has --http-port."""
    help_text = subprocess.run([sys.executable, "-m", "firmware.cli", "run", "--help"],
                               capture_output=True, text=True, cwd=TOP).stdout
    return "--http-port" in help_text


def smtp_banner(port: int, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        return sock.recv(512)


def wait_for_banner(port: int, timeout: float) -> bytes:
    # QEMU accepts on the forwarded port before the guest listens, then drops
    # the connection: only a banner means the box answers.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            banner = smtp_banner(port, timeout=5)
            if banner.startswith(b"220"):
                return banner
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"no SMTP banner on 127.0.0.1:{port} within {timeout:.0f}s")


def https_get(port: int, path: str = "/") -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE   # the box's own self-signed certificate
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with context.wrap_socket(raw) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: gatebox\r\n\r\n".encode())
            return sock.recv(4096)


@pytest.fixture(scope="module")
def machine_factory(request, tmp_path_factory):
    """Makes booted machines for the module; keeps each serial console as a
    test artifact and powers the machines off at the end."""
    image = image_or_skip()
    machines = []

    def make(name: str = "box", seed: dict | None = None) -> boot.Machine:
        workdir = tmp_path_factory.mktemp(name)
        machine = boot.Machine(workdir, image=image, seed=seed).start()
        machines.append((name, machine))
        return machine

    yield make
    module = request.module.__name__.rsplit(".", 1)[-1]
    for name, machine in machines:
        machine.stop()
        target = ARTIFACTS / module
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(machine.console_path, target / f"{name}-console.log")
