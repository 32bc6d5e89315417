"""What a mounted USB stick offers: *.raucb update bundles, license key
files (*.lic, *.key, gatebox-license*.txt holding a GATEBOX- key) and
anti-virus signature files (*.cvd, *.cld, *.cud, *.cdiff: the SoftPak that
handles a kind checks the file when the administrator confirms). Scanning
takes a directory, so it is tested without udev or a stick."""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import re
from pathlib import Path

from firmware.system import durable

LICENSE_PATTERNS = ("*.lic", "*.key", "gatebox-license*.txt")
BUNDLE_PATTERN = "*.raucb"
SIGNATURE_PATTERNS = ("*.cvd", "*.cld", "*.cud", "*.cdiff")
# Kinds a SoftPak applies (the gatebox_usb_offer_apply hook), not the core.
SOFTPAK_KINDS = ("signatures",)
MAX_LICENSE_FILE = 64 * 1024
# Sticks carry other things too; look only near the top.
MAX_DEPTH = 2
KEY_START = re.compile(r"GATEBOX-[0-9A-Z]{5}", re.I)


@dataclasses.dataclass
class Offer:
    id: str
    kind: str  # "bundle", "license" or one of SOFTPAK_KINDS
    device: str
    path: str
    name: str
    size: int
    preview: str = ""


def scan(root: Path, device: str) -> list[Offer]:
    root = Path(root)
    offers = []
    for path in sorted(_files(root)):
        kind = _kind(path)
        if kind is None:
            continue
        size = path.stat().st_size
        preview = path.name
        if kind == "license":
            key = _license_key_start(path, size)
            if key is None:
                continue
            preview = key + "…"
        offer_id = hashlib.sha256(f"{device}:{path.relative_to(root)}".encode()).hexdigest()[:16]
        offers.append(Offer(id=offer_id, kind=kind, device=device, path=str(path),
                            name=str(path.relative_to(root)), size=size, preview=preview))
    return offers


def _files(root: Path):
    for directory, subdirectories, files in os.walk(root):
        depth = len(Path(directory).relative_to(root).parts)
        subdirectories[:] = [] if depth >= MAX_DEPTH else [
            name for name in subdirectories if not name.startswith(".")]
        for name in files:
            path = Path(directory) / name
            if not name.startswith(".") and path.is_file() and not path.is_symlink():
                yield path


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if fnmatch.fnmatch(name, BUNDLE_PATTERN):
        return "bundle"
    if any(fnmatch.fnmatch(name, pattern) for pattern in LICENSE_PATTERNS):
        return "license"
    if any(fnmatch.fnmatch(name, pattern) for pattern in SIGNATURE_PATTERNS):
        return "signatures"
    return None


def _license_key_start(path: Path, size: int) -> str | None:
    if size > MAX_LICENSE_FILE:
        return None
    match = KEY_START.search(path.read_text(errors="replace"))
    return match.group(0).upper() if match else None


def read_license_text(offer: Offer) -> str:
    return Path(offer.path).read_text(errors="replace")[:MAX_LICENSE_FILE]


# ---- the offers file: written by the root watcher, read by the web UI --------
# In root's own directory inside /data: the service user owns /data and could
# otherwise plant a symlink where root writes.
def root_dir(data: Path) -> Path:
    return Path(data) / "root"


def offers_file(data: Path) -> Path:
    return root_dir(data) / "usb-offers.json"


def load(data: Path) -> dict[str, list[Offer]]:
    try:
        raw = json.loads(offers_file(data).read_text())
    except (OSError, ValueError):
        return {}
    return {device: [Offer(**offer) for offer in offers] for device, offers in raw.items()}


def all_offers(data: Path) -> list[Offer]:
    return [offer for offers in load(data).values() for offer in offers]


def find(data: Path, offer_id: str) -> Offer | None:
    return next((offer for offer in all_offers(data) if offer.id == offer_id), None)


def record(data: Path, device: str, offers: list[Offer]) -> None:
    current = load(data)
    current[device] = offers
    _save(data, current)


def drop(data: Path, device: str | None = None) -> None:
    """Forget one device's offers (it was removed), or every device's."""
    current = {} if device is None else {k: v for k, v in load(data).items() if k != device}
    _save(data, current)


def _save(data: Path, current: dict[str, list[Offer]]) -> None:
    durable.root_directory(root_dir(data))
    durable.write_json_atomically(offers_file(data), {
        device: [dataclasses.asdict(offer) for offer in offers] for device, offers in current.items()},
        trusted_owner=os.geteuid())
