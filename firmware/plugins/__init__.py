"""The SoftPak framework: hook specifications (hookspecs), manifests
(manifest), and the registry that loads only the SoftPaks the license
allows (registry); what each SoftPak's state is (status)."""

from .hookspecs import PROJECT, DeliveryContext, SoftPakSpec, hookimpl, hookspec
from .manifest import Manifest, ManifestError
from .registry import (DEFAULT_PACKAGE, Registry, active_plugin_manager, installed_softpaks,
                       registry, setting_softpak, softpak_menu_pages, softpak_name,
                       softpak_settings)

__all__ = ["PROJECT", "DeliveryContext", "SoftPakSpec", "hookimpl", "hookspec", "Manifest",
           "ManifestError", "DEFAULT_PACKAGE", "Registry", "active_plugin_manager",
           "installed_softpaks", "registry", "setting_softpak", "softpak_menu_pages",
           "softpak_name", "softpak_settings"]
