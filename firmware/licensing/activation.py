"""Licenses activated on this box, kept in the settings database.

Each stored key is verified again whenever it is read, so a row copied from
another box or edited by hand grants nothing. What a license grants, until
when, its issue date and its serial come only from the verified key text:
the row's serial, issued and grants columns are a copy for people reading
the database, and a copy that disagrees with the key is ignored and
reported (StoredLicense.ignored). Expiry is judged by the license day
(clock): turning the clock back extends nothing. Removing a license or letting
it expire touches no setting, mailbox or queued message: the SoftPak stops,
and a new key brings it back as it was.

`store` is the settings store or anything shaped like it: `.db`,
`.transaction()`, `.audit()`, `.touch()` and `.installed_softpaks()`, the
SoftPak ids this firmware carries. Licensing sits below the settings and the
SoftPak registry, so the caller knows what is installed and hands it over.

A key needs to grant at least one installed SoftPak. Its grants for SoftPaks
this firmware lacks are kept (they are part of the signed key text) and take
effect once a firmware that has them is installed; until then listings show
them as NOT_INSTALLED and they are never active."""

from __future__ import annotations

import datetime
import functools
import json
import time
from dataclasses import dataclass

from . import clock, expiry, textform, trust, verify
from .errors import LicenseError, NoSuchLicense
from .payload import License
from .serial import box_serial

NOT_INSTALLED = "not in this firmware"


@dataclass
class Activation:
    license: License
    new: bool
    not_installed: set        # granted SoftPaks this firmware lacks


@dataclass
class StoredLicense:
    id: str
    grants: dict              # softpak -> expiry date or None
    issued: datetime.date | None   # None: the key does not verify
    serial: str
    activated_at: float
    activated_by: str
    problem: str | None       # why it grants nothing on this box, or None
    not_installed: set        # granted SoftPaks this firmware lacks
    ignored: list             # stored fields that disagree with the key, one sentence each


def activate(store, text: str, actor: str = "system", now=None) -> Activation:
    installed = set(store.installed_softpaks())
    lic = verify.verify(text, box_serial(), installed, license_day(store, now).day)
    missing = verify.not_installed(lic, installed)
    canonical = textform.encode(textform.decode(text))
    with store.transaction():
        if store.db.execute("SELECT 1 FROM licenses WHERE key_id = ?", [lic.id]).fetchone():
            return Activation(lic, False, missing)
        store.db.execute(
            "INSERT INTO licenses(key_id, key_text, serial, issued, grants, activated_at, activated_by)"
            " VALUES(?, ?, ?, ?, ?, ?, ?)",
            [lic.id, canonical, lic.serial, lic.issued.isoformat(), _grants_json(lic.grants),
             time.time(), actor])
        store.audit(actor, f"activate license {lic.id}", "", _grants_text(lic.grants))
    store.touch()
    return Activation(lic, True, missing)


def remove(store, key_id: str, actor: str = "system"):
    key_id = key_id.strip().upper()
    with store.transaction():
        row = store.db.execute("SELECT key_text FROM licenses WHERE key_id = ?",
                               [key_id]).fetchone()
        if row is None:
            raise NoSuchLicense(f"{key_id} (see 'gatebox license show')")
        store.db.execute("DELETE FROM licenses WHERE key_id = ?", [key_id])
        try:
            was = _grants_text(_read_cached(row[0], _trust_fingerprint()).grants)
        except LicenseError as error:
            was = f"nothing ({error})"
        store.audit(actor, f"remove license {key_id}", was, "")
    store.touch()


def stored_licenses(store, now=None) -> list[StoredLicense]:
    serial = box_serial()
    installed = set(store.installed_softpaks())
    result = []
    for row in store.db.query("SELECT * FROM licenses ORDER BY activated_at, key_id"):
        try:
            lic = _read_cached(row["key_text"], _trust_fingerprint())
        except LicenseError as error:
            # Nothing of an unverifiable row is believed: it grants nothing.
            result.append(StoredLicense(row["key_id"], {}, None, "", row["activated_at"],
                                        row["activated_by"], str(error), set(), []))
            continue
        problem = None
        try:
            verify.check_serial(lic, serial)
        except LicenseError as error:
            problem = str(error)
        result.append(StoredLicense(row["key_id"], dict(lic.grants), lic.issued, lic.serial,
                                    row["activated_at"], row["activated_by"], problem,
                                    set(lic.grants) - installed, _disagreements(row, lic)))
    return result


def license_day(store, now=None) -> clock.LicenseDay:
    """The day expiry is judged by (see clock); the newest verified key's
    issue date is a floor too."""
    issued = [s.issued for s in stored_licenses(store) if s.issued is not None]
    return clock.license_day(store, now, max(issued, default=None))


def granted(store, now=None) -> dict:
    """softpak -> best expiry (None = perpetual) over the licenses valid on this box,
    whatever their expiry state, including SoftPaks this firmware lacks."""
    result = {}
    for stored in stored_licenses(store, now):
        if stored.problem:
            continue
        for softpak, end in stored.grants.items():
            result[softpak] = expiry.better(result[softpak], end) if softpak in result else end
    return result


def active_softpaks(store, now=None) -> set[str]:
    """The SoftPaks running on this box now (installed, licensed, not past the
    grace period)."""
    installed = set(store.installed_softpaks())
    day = license_day(store, now).day
    return {softpak for softpak, end in granted(store, now).items()
            if softpak in installed and expiry.state(end, day) in expiry.RUNNING_STATES}


def _trust_fingerprint() -> tuple:
    return tuple(sorted(key_id for key_id in trust.trusted_keys()))


@functools.lru_cache(maxsize=256)
def _read_cached(text: str, trusted: tuple) -> License:
    # `trusted` is part of the cache key so a changed key set re-verifies.
    return verify.read(text)


def _disagreements(row, lic: License) -> list[str]:
    """The stored copies of the key's fields that differ from the key."""
    found = []
    if row["key_id"] != lic.id:
        found.append(f"key_id column says {row['key_id']}, the key is {lic.id}")
    if row["serial"] != lic.serial:
        found.append(f"serial column says {row['serial']!r}, the key names {lic.serial!r}")
    if row["issued"] != lic.issued.isoformat():
        found.append(f"issued column says {row['issued']!r}, the key was issued {lic.issued}")
    try:
        stored_grants = _grants_from_json(row["grants"])
    except (ValueError, TypeError, AttributeError):
        stored_grants = None
    if stored_grants != lic.grants:
        found.append(f"grants column says {row['grants']!r}, the key grants "
                     f"{_grants_text(lic.grants)}")
    return found


def _grants_json(grants: dict) -> str:
    return json.dumps({k: (v.isoformat() if v else None) for k, v in sorted(grants.items())})


def _grants_from_json(text: str) -> dict:
    return {k: (datetime.date.fromisoformat(v) if v else None) for k, v in json.loads(text).items()}


def _grants_text(grants: dict) -> str:
    return ", ".join(f"{k}={v.isoformat() if v else 'perpetual'}" for k, v in sorted(grants.items()))
