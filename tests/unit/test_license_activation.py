import datetime

import pytest

from firmware.config import SettingError
from firmware.licensing import (NoSuchLicense, activate, active_softpaks, remove,
                                stored_licenses)

TODAY = datetime.date(2026, 3, 1)


def test_activation_unlocks_gated_server_types(vendor, store):
    with pytest.raises(SettingError, match="Mail Server SoftPak"):
        store.set("email.server_type", "standalone")
    assert store.get("email.server_type") == "relay"
    activate(store, vendor.issue(mailserver=None), actor="admin")
    for server_type in ("standalone", "multidrop", "mirrored", "etrn", "mailbag", "relay"):
        store.set("email.server_type", server_type)
        assert store.get("email.server_type") == server_type


def test_activation_is_recorded_and_idempotent(vendor, store):
    text = vendor.issue(mailserver="2027-12-31")
    before = store.generation()
    first = activate(store, text, actor="admin", now=TODAY)
    assert first.new and store.generation() == before + 1
    again = activate(store, text.lower().replace("-", " "), actor="someone else", now=TODAY)
    assert not again.new and store.generation() == before + 1
    [stored] = stored_licenses(store, now=TODAY)
    assert stored.id == first.license.id
    assert stored.activated_by == "admin" and stored.activated_at > 0
    assert stored.problem is None
    assert [e["what"] for e in store.audit_log()].count(f"activate license {stored.id}") == 1


def test_remove_stops_the_softpak_but_keeps_settings(vendor, store):
    lic = activate(store, vendor.issue(mailserver=None)).license
    store.set("email.server_type", "standalone")
    generation = store.generation()
    remove(store, lic.id.lower(), actor="admin")
    assert store.generation() == generation + 1
    assert active_softpaks(store) == set()
    assert store.get("email.server_type") == "standalone"
    assert store.all()["email.server_type"] == "standalone"
    with pytest.raises(SettingError):
        store.set("email.server_type", "standalone")
    # Other settings can still be changed while the gated type stays stored.
    store.set("email.domain", "office.example")
    assert store.get("email.server_type") == "standalone"
    with pytest.raises(NoSuchLicense):
        remove(store, lic.id)
    activate(store, vendor.issue(mailserver=None))
    assert store.get("email.server_type") == "standalone"
    assert active_softpaks(store) == {"mailserver"}


def test_longest_grant_wins(vendor, store):
    activate(store, vendor.issue(mailserver="2026-03-10"), now=TODAY)
    activate(store, vendor.issue(mailserver="2028-01-01"), now=TODAY)
    assert active_softpaks(store, now=datetime.date(2027, 6, 1)) == {"mailserver"}


def test_stored_key_edited_in_the_database_grants_nothing(vendor, store):
    lic = activate(store, vendor.issue(mailserver=None)).license
    forged = vendor.issue(serial="GBX-OTHER", mailserver=None)
    store.db.execute("UPDATE licenses SET key_text = ? WHERE key_id = ?", [forged, lic.id])
    [stored] = stored_licenses(store)
    assert "another box" in stored.problem
    assert active_softpaks(store) == set()


def test_trusted_key_removed_from_environment_grants_nothing(vendor, store, monkeypatch, tmp_path):
    activate(store, vendor.issue(mailserver=None))
    from gatebox_vendor.signing import keygen
    _, other_public = keygen(tmp_path / "other", "other")
    monkeypatch.setenv("GATEBOX_VENDOR_PUBKEYS", str(other_public))
    assert active_softpaks(store) == set()
