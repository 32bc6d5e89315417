"""Licensing fixtures (a pytest plugin loaded by tests/conftest.py).

Every test that touches licenses gets a vendor key pair made on the spot (no
private key lives in the repository), trusted through GATEBOX_VENDOR_PUBKEYS,
and a fixed box serial through GATEBOX_SERIAL. Both are environment variables,
so `gatebox` subprocesses inherit them."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOX_SERIAL = "GBX-TEST-0001"


class Vendor:
    """The vendor's side in tests: a signing key and a way to issue keys."""

    def __init__(self, directory: Path):
        from gatebox_vendor.signing import keygen, load_private_key
        self.private_path, self.public_path = keygen(directory, "test-vendor")
        self.private_key = load_private_key(self.private_path)

    def issue(self, serial: str = BOX_SERIAL, issued: datetime.date | None = None,
              wrap: bool = False, **grants) -> str:
        """issue(mailserver="2027-12-31", jukebox=None) -> key text (None: perpetual)."""
        from gatebox_vendor.signing import issue
        parsed = {k: (datetime.date.fromisoformat(v) if isinstance(v, str) else v)
                  for k, v in grants.items()}
        return issue(self.private_key, serial, parsed, issued, wrap=wrap)


@pytest.fixture
def vendor(tmp_path, monkeypatch) -> Vendor:
    made = Vendor(tmp_path / "vendor-keys")
    monkeypatch.setenv("GATEBOX_VENDOR_PUBKEYS", str(made.public_path))
    return made


@pytest.fixture
def box_serial(monkeypatch) -> str:
    monkeypatch.setenv("GATEBOX_SERIAL", BOX_SERIAL)
    return BOX_SERIAL


@pytest.fixture
def store(tmp_path, box_serial):
    from firmware.config import Store
    created = Store.create(tmp_path / "data")
    yield created
    created.close()


@pytest.fixture
def licensed(vendor, box_serial):
    """licensed(data_dir, mailserver=None, ...): activate a key on a box's data dir."""
    def activate_on(data_dir, **grants):
        from firmware.config import Store
        from firmware.licensing import activate
        opened = Store(data_dir)
        try:
            return activate(opened, vendor.issue(**(grants or {"mailserver": None})), actor="test")
        finally:
            opened.close()
    return activate_on


def run_gatebox(data_dir, *args, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """The real `gatebox` command in a subprocess (inherits the test's environment)."""
    result = subprocess.run([sys.executable, "-m", "firmware.cli", "--data", str(data_dir), *args],
                            cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"gatebox {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def run_vendor(*args, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "gatebox_vendor.cli", *args], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"gatebox-vendor {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


@pytest.fixture
def gatebox():
    return run_gatebox


@pytest.fixture
def gatebox_vendor():
    return run_vendor
