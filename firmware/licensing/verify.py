"""From pasted text to a License this box may use, or the reason it may not.
The checks run from the cheapest and most likely to be a typo to the most
specific, so the administrator hears the first thing that is wrong."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature

from . import expiry, payload, textform, trust
from .errors import BadSignature, ExpiredKey, UnknownSoftPak, WrongSerial


def read(text: str) -> payload.License:
    """Decode and check the signature; no box-specific checks."""
    lic = payload.unpack(textform.decode(text))
    key = trust.trusted_keys().get(lic.signer_id)
    if key is None:
        raise BadSignature(f"signed by vendor key {lic.signer_id.hex()}, "
                           "which this firmware does not trust")
    try:
        key.verify(lic.signature, lic.signed_bytes())
    except InvalidSignature:
        raise BadSignature("the key was altered or not issued by the vendor") from None
    return lic


def check_serial(lic: payload.License, serial: str):
    if lic.serial != serial:
        raise WrongSerial(f"it names serial {lic.serial}, this box is {serial} "
                          "(see 'gatebox license serial')")


def not_installed(lic: payload.License, installed: set[str]) -> set[str]:
    """The SoftPaks the key grants that this firmware lacks. Their grants stay in
    the key and take effect once a firmware that has them is installed."""
    return set(lic.grants) - set(installed)


def check_for_box(lic: payload.License, serial: str, installed: set[str], now=None):
    check_serial(lic, serial)
    if not set(lic.grants) & set(installed):
        verb = "is" if len(lic.grants) == 1 else "are"
        raise UnknownSoftPak(f"{', '.join(sorted(lic.grants))} {verb} not part of this firmware "
                             f"(installed: {', '.join(sorted(installed)) or 'none'}); "
                             "a firmware update may be needed")
    states = {softpak: expiry.state(end, now) for softpak, end in lic.grants.items()}
    if all(state == expiry.OFF for state in states.values()):
        ends = ", ".join(f"{s} {lic.grants[s]}" for s in sorted(states))
        raise ExpiredKey(f"every SoftPak it grants has ended, grace period included ({ends})")


def verify(text: str, serial: str, installed: set[str], now=None) -> payload.License:
    lic = read(text)
    check_for_box(lic, serial, installed, now)
    return lic
