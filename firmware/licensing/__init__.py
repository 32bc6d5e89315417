"""License keys and the SoftPaks they grant: the key format (payload,
textform), vendor keys (trust), checks (verify), expiry states (expiry), the
box's serial number keys name (serial) and the licenses activated on this box
(activation, online). Licensing knows nothing of settings or SoftPaks: the
caller hands it a store and, through it, the installed SoftPak ids."""

from __future__ import annotations

from .activation import (NOT_INSTALLED, Activation, StoredLicense, activate, active_softpaks,
                         granted, license_day, remove, stored_licenses)
from .clock import LicenseDay
from .errors import (BadSignature, ExpiredKey, LicenseError, MalformedKey, NoSuchLicense,
                     OnlineActivationError, UnknownSoftPak, WrongSerial)
from .serial import NoSerial, box_serial


def is_active(store, softpak: str, now=None) -> bool:
    return softpak in active_softpaks(store, now)


__all__ = ["NOT_INSTALLED", "Activation", "StoredLicense", "activate", "granted", "remove",
           "license_day", "LicenseDay",
           "stored_licenses", "active_softpaks", "is_active", "BadSignature", "ExpiredKey",
           "LicenseError", "MalformedKey", "NoSuchLicense", "OnlineActivationError",
           "UnknownSoftPak", "WrongSerial", "NoSerial", "box_serial"]
