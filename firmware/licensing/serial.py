"""The box's serial number, which license keys name. The same rule runs on
every boot so the number never changes: the DMI product serial when the
board has a real one, else the first permanent MAC address, else a value
derived from /etc/machine-id. GATEBOX_SERIAL overrides it for tests and
development."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

ENV_VAR = "GATEBOX_SERIAL"

# What board vendors leave in the DMI serial field when they do not set it.
_PLACEHOLDERS = {
    "", "0", "none", "null", "n/a", "na", "default string", "to be filled by o.e.m.",
    "to be filled by oem", "system serial number", "not specified", "not applicable",
    "chassis serial number", "serial number", "0123456789", "123456789", "xxxxxxxx",
}
_ALLOWED = re.compile(r"[^A-Za-z0-9._-]")


class NoSerial(RuntimeError):
    pass


def box_serial(root: str | os.PathLike = "/") -> str:
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        return override
    root = Path(root)
    for source in (dmi_serial, mac_serial, machine_id_serial):
        serial = source(root)
        if serial:
            return serial
    raise NoSerial("no DMI serial, no permanent network interface and no /etc/machine-id")


def dmi_serial(root: Path) -> str | None:
    raw = _read(root / "sys/class/dmi/id/product_serial")
    if raw is None:
        return None
    text = raw.strip()
    if text.lower() in _PLACEHOLDERS or len(set(text)) == 1:
        return None
    cleaned = _ALLOWED.sub("", text.replace(" ", "-"))[:64]
    return cleaned or None


def mac_serial(root: Path) -> str | None:
    net = root / "sys/class/net"
    if not net.is_dir():
        return None
    for interface in sorted(p.name for p in net.iterdir()):
        mac = _permanent_mac(root, net / interface)
        if mac:
            return "MAC-" + mac
    return None


def machine_id_serial(root: Path) -> str | None:
    raw = _read(root / "etc/machine-id")
    if not raw or not re.fullmatch(r"[0-9a-f]{32}", raw.strip()):
        return None
    # machine-id is meant to stay private; derive an application-specific
    # value from it instead of printing it.
    digest = hmac.new(bytes.fromhex(raw.strip()), b"gatebox serial", hashlib.sha256).hexdigest()
    return "MID-" + digest[:16].upper()


def _permanent_mac(root: Path, link: Path) -> str | None:
    if link.name == "lo":
        return None
    device = Path(os.path.realpath(link))
    virtual = os.path.realpath(root / "sys/devices/virtual")
    if str(device).startswith(virtual + os.sep):
        return None
    # addr_assign_type 0 means the address came from the hardware; random,
    # stolen or user-set addresses may differ next boot.
    assign_type = _read(link / "addr_assign_type")
    if assign_type is not None and assign_type.strip() not in ("0", ""):
        return None
    address = (_read(link / "address") or "").strip().lower()
    if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", address):
        return None
    octets = bytes.fromhex(address.replace(":", ""))
    if octets == bytes(6) or octets[0] & 0x02 or octets[0] & 0x01:
        return None
    return octets.hex().upper()


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None
