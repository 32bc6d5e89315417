"""Why a license key was refused. Each refusal has its own class so the CLI,
the web admin and the tests can tell them apart; str() is the message for
the administrator."""

from __future__ import annotations


class LicenseError(Exception):
    reason = "refused"

    def __str__(self):
        detail = super().__str__()
        return f"{self.reason}: {detail}" if detail else self.reason


class MalformedKey(LicenseError):
    reason = "malformed license key"


class BadSignature(LicenseError):
    reason = "bad signature"


class WrongSerial(LicenseError):
    reason = "license key is for another box"


class ExpiredKey(LicenseError):
    reason = "license key has expired"


class UnknownSoftPak(LicenseError):
    reason = "unknown SoftPak"


class NoSuchLicense(LicenseError):
    reason = "no such license"


class OnlineActivationError(LicenseError):
    reason = "online activation failed"
