"""Each refusal has its own error, and a refused key changes nothing."""

import datetime

import pytest

from firmware.licensing import (BadSignature, ExpiredKey, MalformedKey, UnknownSoftPak,
                                WrongSerial, activate, active_softpaks, payload,
                                stored_licenses, textform)

TODAY = datetime.date(2026, 3, 1)


def _licenses(store):
    return store.db.execute("SELECT COUNT(*) FROM licenses").fetchone()[0]


def _refused(store, text, error_class, match):
    generation, audit = store.generation(), len(store.audit_log())
    with pytest.raises(error_class, match=match) as caught:
        activate(store, text, actor="test", now=TODAY)
    assert _licenses(store) == 0
    assert store.generation() == generation
    assert len(store.audit_log()) == audit
    assert active_softpaks(store, now=TODAY) == set()
    return caught.value


def test_good_key_activates(vendor, store_with_demo):
    store = store_with_demo
    text = vendor.issue(mailserver="2027-12-31", demo=None)
    result = activate(store, text, actor="test", now=TODAY)
    assert result.new and result.not_installed == set()
    assert result.license.grants == {"mailserver": datetime.date(2027, 12, 31), "demo": None}
    assert active_softpaks(store, now=TODAY) == {"mailserver", "demo"}


def test_malformed(vendor, store):
    text = vendor.issue(mailserver="2027-12-31")
    position = len(text) // 2
    flipped = text[:position] + ("A" if text[position] != "A" else "B") + text[position + 1:]
    error = _refused(store, flipped, MalformedKey, "malformed")
    assert "check character" in str(error)
    _refused(store, "GATEBOX-NOT-A-KEY", MalformedKey, "malformed")


def test_tampered_key_has_bad_signature(vendor, store):
    raw = bytearray(textform.decode(vendor.issue(mailserver="2027-12-31")))
    lic = payload.unpack(bytes(raw))
    # Push the expiry to a later date, re-encode with a correct check character.
    expiry_days = (lic.grants["mailserver"] - payload.EPOCH).days
    index = bytes(raw).rindex(expiry_days.to_bytes(2, "big"), 0, len(raw) - payload.SIGNATURE_SIZE)
    raw[index:index + 2] = (expiry_days + 3650).to_bytes(2, "big")
    tampered = textform.encode(bytes(raw))
    assert payload.unpack(bytes(raw)).grants["mailserver"].year == 2037
    _refused(store, tampered, BadSignature, "bad signature: the key was altered")


def test_key_from_an_untrusted_vendor_has_bad_signature(vendor, store, tmp_path):
    from gatebox_vendor.signing import issue, keygen, load_private_key
    other, _ = keygen(tmp_path / "impostor", "impostor")
    text = issue(load_private_key(other), store_serial(), {"mailserver": None})
    _refused(store, text, BadSignature, "does not trust")


def store_serial():
    from firmware.licensing.serial import box_serial
    return box_serial()


def test_another_box(vendor, store):
    text = vendor.issue(serial="GBX-SOMEONE-ELSE", mailserver="2027-12-31")
    error = _refused(store, text, WrongSerial, "another box")
    assert "GBX-SOMEONE-ELSE" in str(error) and store_serial() in str(error)


def test_expired(vendor, store):
    text = vendor.issue(mailserver="2025-12-31", issued=datetime.date(2024, 1, 1))
    _refused(store, text, ExpiredKey, "expired")


def test_key_in_its_grace_period_is_still_accepted(vendor, store):
    # Issued before TODAY: an issue date is a day the box knows has come.
    text = vendor.issue(mailserver=(TODAY - datetime.timedelta(days=3)).isoformat(),
                        issued=TODAY - datetime.timedelta(days=365))
    assert activate(store, text, now=TODAY).new
    assert active_softpaks(store, now=TODAY) == {"mailserver"}


def test_key_granting_only_softpaks_this_firmware_lacks_is_refused(vendor, store):
    text = vendor.issue(teleporter=None, jukebox="2027-12-31")
    error = _refused(store, text, UnknownSoftPak, "unknown SoftPak")
    assert "jukebox, teleporter are not part of this firmware" in str(error)
    assert "installed: antispam, antivirus, mailserver" in str(error)


def test_grant_for_a_softpak_this_firmware_lacks_waits_for_one_that_has_it(
        vendor, store, demo_package, monkeypatch):
    result = activate(store, vendor.issue(mailserver="2027-12-31", demo=None), now=TODAY)
    assert result.new and result.not_installed == {"demo"}
    assert active_softpaks(store, now=TODAY) == {"mailserver"}
    [stored] = stored_licenses(store, now=TODAY)
    assert stored.grants == {"mailserver": datetime.date(2027, 12, 31), "demo": None}
    assert stored.not_installed == {"demo"} and stored.problem is None

    # A firmware update brings the SoftPak: the stored key grants it without re-activation.
    monkeypatch.setattr(store, "installed_softpaks",
                        lambda: {"mailserver"} | set(demo_package.manifests))
    assert active_softpaks(store, now=TODAY) == {"mailserver", "demo"}
    [stored] = stored_licenses(store, now=TODAY)
    assert stored.not_installed == set()


def test_refusal_messages_differ(vendor, store):
    from firmware.licensing import errors
    reasons = {cls.reason for cls in (errors.MalformedKey, errors.BadSignature, errors.WrongSerial,
                                      errors.ExpiredKey, errors.UnknownSoftPak)}
    assert len(reasons) == 5
