"""A SoftPak's manifest.toml (id, name, version, description, adds,
requires, hooks) and finding the SoftPaks installed under a package. The
manifest is the one place a SoftPak's display name is written."""

from __future__ import annotations

import importlib
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("gatebox.plugins")


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class Manifest:
    id: str
    name: str
    version: str
    description: str
    adds: tuple = ()
    requires: tuple = ()
    hooks: str = ""  # module holding the hook implementations
    path: Path | None = field(default=None, compare=False)

    @classmethod
    def load(cls, package: str, directory: Path) -> "Manifest":
        path = directory / "manifest.toml"
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ManifestError(f"{path}: {error}") from None
        missing = [k for k in ("id", "name", "version", "description") if not data.get(k)]
        if missing:
            raise ManifestError(f"{path}: missing {', '.join(missing)}")
        if data["id"] != directory.name:
            raise ManifestError(f"{path}: id '{data['id']}' differs from its directory name")
        hooks = data.get("hooks") or ""
        if hooks.startswith("."):
            hooks = f"{package}.{directory.name}{hooks}"
        return cls(id=data["id"], name=data["name"], version=str(data["version"]),
                   description=data["description"].strip(), adds=tuple(data.get("adds", ())),
                   requires=tuple(data.get("requires", ())),
                   hooks=hooks or f"{package}.{directory.name}", path=directory)


def discover(package: str) -> dict[str, Manifest]:
    """id -> Manifest for every sub-package of `package` with a manifest.toml."""
    module = importlib.import_module(package)
    found = {}
    for root in getattr(module, "__path__", []):
        for directory in sorted(Path(root).iterdir()):
            if (directory / "manifest.toml").is_file():
                try:
                    manifest = Manifest.load(package, directory)
                except ManifestError as error:
                    # One broken SoftPak must not take the settings store down with it.
                    log.error("SoftPak skipped: %s", error)
                    continue
                found.setdefault(manifest.id, manifest)
    return found
