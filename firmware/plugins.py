"""SoftPak hook specifications and the registry that loads SoftPaks.

A SoftPak is a sub-package of `softpaks/` with a `manifest.toml` (id, name,
version, description, adds, requires) and pluggy hook implementations in the
package itself or in the module its manifest names as `hooks`.

Two views of the installed SoftPaks:
- every installed SoftPak declares its settings, licensed or not, so values
  stored while it was licensed stay readable (`softpak_settings`);
- everything else (policy checks, routes, services, pages, commands) comes
  only from SoftPaks whose license is active (`active_plugin_manager`)."""

from __future__ import annotations

import functools
import importlib
import logging
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pluggy

PROJECT = "gatebox"
DEFAULT_PACKAGE = "softpaks"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
log = logging.getLogger("gatebox.plugins")


class SoftPakSpec:
    """Each hook returns a list; pluggy collects one list per SoftPak."""

    @hookspec
    def gatebox_settings(self):
        """Setting declarations (firmware.config.types.Setting) this SoftPak adds."""

    # Hooks taking `store` get the running service's settings Store; an
    # implementation may leave the argument out if it does not need it.
    @hookspec
    def gatebox_policy_checks(self, store):
        """SMTP policy checks: objects with a name, a stage (connect, helo, mail,
        rcpt, data) and a check callable, added to smtpd's chain."""

    @hookspec
    def gatebox_routes(self, store):
        """Routing rules that turn a recipient into a destination (e.g. a local mailbox)."""

    @hookspec
    def gatebox_delivery_agents(self, context):
        """{destination kind: agent} for the queue manager; an agent has
        .deliver(destination, sender, recipients, message, settings, body_8bit)
        -> {recipient: Result}. `context` is a DeliveryContext."""

    @hookspec
    def gatebox_services(self, store, options):
        """Long-running services to start with the mail stack while the SoftPak
        is licensed: objects with a `name` and async start() / stop().
        `options` holds what `gatebox run` was given (bind, ports)."""

    @hookspec
    def gatebox_unlicensed_services(self, store, options):
        """Stand-ins run while an installed SoftPak is NOT licensed, e.g. a
        listener telling mail clients why access is off and how to restore it."""

    @hookspec
    def gatebox_menu_pages(self):
        """Web admin menu entries: dicts with "menu" (the eSoft menu path),
        "title", "softpak" and, when the SoftPak brings the page itself,
        "blueprint" (a Flask blueprint, mounted for every installed SoftPak),
        "endpoint" (the view the menu entry opens), "help" (its help page,
        templates/help/<help>.html) and "purpose" (what the page is for, shown
        while the license is not active). Entries without a blueprint describe
        what the SoftPak adds to a page of the core."""

    @hookspec
    def gatebox_cli_commands(self):
        """click commands or groups added to the `gatebox` command."""

    @hookspec
    def gatebox_migrations(self):
        """(number, fn(db)) schema migrations for this SoftPak's own tables."""


@dataclass
class DeliveryContext:
    """What a SoftPak delivery agent may use in the queue manager process:
    the data directory, the spool (to submit forwarded copies and replies)
    and announce(qid), safe to call from any thread, so the queue manager
    picks a submitted message up at once."""
    data_dir: Path
    spool: object
    announce: object


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
        return cls(id=data["id"], name=data["name"], version=str(data["version"]),
                   description=data["description"].strip(), adds=tuple(data.get("adds", ())),
                   requires=tuple(data.get("requires", ())),
                   hooks=data.get("hooks") or f"{package}.{directory.name}", path=directory)


class Registry:
    """The SoftPaks installed under one package (normally `softpaks`)."""

    def __init__(self, package: str = DEFAULT_PACKAGE):
        self.package = package
        self._lock = threading.Lock()
        self._active_cache: dict = {}

    @functools.cached_property
    def manifests(self) -> dict[str, Manifest]:
        module = importlib.import_module(self.package)
        found = {}
        for root in getattr(module, "__path__", []):
            for directory in sorted(Path(root).iterdir()):
                if (directory / "manifest.toml").is_file():
                    try:
                        manifest = Manifest.load(self.package, directory)
                    except ManifestError as error:
                        # One broken SoftPak must not take the settings store down with it.
                        log.error("SoftPak skipped: %s", error)
                        continue
                    found.setdefault(manifest.id, manifest)
        return found

    def plugin_manager(self, softpak_ids) -> pluggy.PluginManager:
        manager = pluggy.PluginManager(PROJECT)
        manager.add_hookspecs(SoftPakSpec)
        for softpak in sorted(self.loadable(softpak_ids)):
            manager.register(importlib.import_module(self.manifests[softpak].hooks), name=softpak)
        return manager

    def loadable(self, softpak_ids) -> set[str]:
        """Of the given ids, those installed and whose required SoftPaks are also given."""
        chosen = {s for s in softpak_ids if s in self.manifests}
        changed = True
        while changed:
            keep = {s for s in chosen if all(r in chosen for r in self.manifests[s].requires)}
            changed, chosen = keep != chosen, keep
        return chosen

    @functools.cached_property
    def all_installed(self) -> pluggy.PluginManager:
        return self.plugin_manager(self.manifests)

    @functools.cached_property
    def settings(self) -> tuple:
        return tuple(s for batch in self.all_installed.hook.gatebox_settings() for s in batch or ())

    def active(self, store, now=None) -> pluggy.PluginManager:
        """The plugin manager for the SoftPaks licensed now. Cached per store
        generation and day, so a service may call it on every request and still
        see a license change (which bumps the generation) or an expiry."""
        from firmware.licensing import active_softpaks
        from firmware.licensing.expiry import today
        key = (str(store.path), store.generation(), today(now))
        with self._lock:
            manager = self._active_cache.get(key)
            if manager is None:
                manager = self.plugin_manager(active_softpaks(store, now))
                # Only the newest entry is kept: an older generation is never asked for again.
                self._active_cache = {key: manager}
        return manager

    def inactive(self, store, now=None) -> pluggy.PluginManager:
        """The plugin manager for the installed SoftPaks NOT licensed now."""
        from firmware.licensing import active_softpaks
        return self.plugin_manager(set(self.manifests) - set(active_softpaks(store, now)))

    @functools.cached_property
    def menu_pages(self) -> tuple:
        """Every installed SoftPak's menu entries, licensed or not: the web admin
        mounts their pages once and checks the license on each request."""
        pages = []
        # pluggy lists implementations last-registered first; keep SoftPak order.
        for impl in reversed(self.all_installed.hook.gatebox_menu_pages.get_hookimpls()):
            for page in impl.function() or ():
                pages.append({**page, "softpak": page.get("softpak") or impl.plugin_name})
        return tuple(pages)

    @functools.cached_property
    def setting_owners(self) -> dict[str, str]:
        """setting key -> the SoftPak that declares it."""
        return {setting.key: impl.plugin_name
                for impl in self.all_installed.hook.gatebox_settings.get_hookimpls()
                for setting in impl.function() or ()}

    def migrations(self) -> list[tuple]:
        """(softpak, number, fn) for every installed SoftPak: their tables
        exist whether or not the license is active, so data outlives expiry."""
        result = []
        for impl in self.all_installed.hook.gatebox_migrations.get_hookimpls():
            for number, migrate in impl.function() or ():
                result.append((impl.plugin_name, number, migrate))
        return sorted(result, key=lambda item: (item[0], item[1]))


@functools.cache
def registry() -> Registry:
    return Registry()


def installed_softpaks() -> dict[str, Manifest]:
    return registry().manifests


def softpak_settings() -> tuple:
    """Settings declared by every installed SoftPak, licensed or not. Called on
    every settings lookup, so computed once per process."""
    return registry().settings


def softpak_menu_pages() -> tuple:
    return registry().menu_pages


def setting_softpak(key: str) -> str | None:
    """The SoftPak that declares a setting, None for the core's own."""
    return registry().setting_owners.get(key)


def active_plugin_manager(store, now=None) -> pluggy.PluginManager:
    return registry().active(store, now)


def apply_softpak_migrations(store):
    from firmware.config.migrations import upgrade
    upgrade(store.db, extra=registry().migrations())


def cli_commands(store) -> list:
    return [c for batch in active_plugin_manager(store).hook.gatebox_cli_commands() for c in batch or ()]
