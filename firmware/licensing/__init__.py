"""License keys and the SoftPaks they grant: the key format (payload,
textform), vendor keys (trust), checks (verify), expiry states (expiry) and
the licenses activated on this box (activation, online)."""

from __future__ import annotations

from .activation import (Activation, StoredLicense, activate, granted, remove,
                         stored_licenses)
from .activation import active_softpaks as _active_softpaks
from .errors import (BadSignature, ExpiredKey, LicenseError, MalformedKey, NoSuchLicense,
                     OnlineActivationError, UnknownSoftPak, WrongSerial)


def active_softpaks(store, now=None) -> set[str]:
    """The SoftPaks running on this box now (licensed, not past the grace period)."""
    return _active_softpaks(store, now)


def is_active(store, softpak: str, now=None) -> bool:
    return softpak in active_softpaks(store, now)


__all__ = ["Activation", "StoredLicense", "activate", "granted", "remove", "stored_licenses",
           "active_softpaks", "is_active", "BadSignature", "ExpiredKey", "LicenseError",
           "MalformedKey", "NoSuchLicense", "OnlineActivationError", "UnknownSoftPak",
           "WrongSerial"]
