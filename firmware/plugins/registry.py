"""The SoftPaks installed under one package (normally `softpaks`) and which
of them run now.

Two views:
- every installed SoftPak declares its settings, tables, pages, commands
  and further local domains, licensed or not, so what was stored while it
  was licensed stays readable (`all_installed`);
- everything else (policy checks, routes, agents, services) comes only from
  SoftPaks whose license is active (`active`)."""

from __future__ import annotations

import functools
import importlib
import threading

import pluggy

from firmware import licensing
from firmware.licensing.expiry import today

from .hookspecs import PROJECT, SoftPakSpec
from .manifest import Manifest, discover

DEFAULT_PACKAGE = "softpaks"


def _flatten(batches) -> list:
    return [item for batch in batches for item in batch or ()]


class Registry:
    def __init__(self, package: str = DEFAULT_PACKAGE):
        self.package = package
        self._lock = threading.Lock()
        self._active_cache: dict = {}

    @functools.cached_property
    def manifests(self) -> dict[str, Manifest]:
        return discover(self.package)

    def name(self, softpak: str) -> str:
        """The SoftPak's display name from its manifest (the id if it is not installed)."""
        manifest = self.manifests.get(softpak)
        return manifest.name if manifest else softpak

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
        return tuple(_flatten(self.all_installed.hook.gatebox_settings()))

    def local_domains(self, settings) -> list[str]:
        """The further local domains the installed SoftPaks add."""
        return [d.lower() for d in _flatten(self.all_installed.hook.gatebox_local_domains(
            settings=settings)) if d]

    @functools.cached_property
    def cli_commands(self) -> tuple:
        return tuple(_flatten(self.all_installed.hook.gatebox_cli_commands()))

    def active(self, store, now=None) -> pluggy.PluginManager:
        """The plugin manager for the SoftPaks licensed now. Cached per store
        generation and day, so a service may call it on every request and still
        see a license change (which bumps the generation) or an expiry."""
        key = (str(store.path), store.generation(), today(now))
        with self._lock:
            manager = self._active_cache.get(key)
            if manager is None:
                manager = self.plugin_manager(licensing.active_softpaks(store, now))
                # Only the newest entry is kept: an older generation is never asked for again.
                self._active_cache = {key: manager}
        return manager

    def inactive(self, store, now=None) -> pluggy.PluginManager:
        """The plugin manager for the installed SoftPaks NOT licensed now."""
        return self.plugin_manager(set(self.manifests) - set(licensing.active_softpaks(store, now)))

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


def softpak_name(softpak: str) -> str:
    return registry().name(softpak)


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
