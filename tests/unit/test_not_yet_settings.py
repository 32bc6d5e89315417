"""Settings and server types the manuals describe but this firmware does not
have: refused by name when chosen; run sanely when an older database holds them."""

import json
import logging

import pytest

from firmware.config import SettingError, declarations
from firmware.licensing import activate
from firmware.mail import server_type
from softpaks.mailserver import routing


def _as_older_firmware_wrote_it(store, key, value):
    store.db.execute("INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) "
                     "DO UPDATE SET value = excluded.value", [key, json.dumps(value)])


@pytest.mark.parametrize("value, label", [
    ("multidrop", "Multi-drop"), ("mirrored", "Mirrored"),
    ("etrn", "Enhanced SMTP Turn Delivery"), ("mailbag", "SMTP Mail-bagging")])
def test_server_types_not_in_this_firmware_are_refused_by_name(store, vendor, value, label):
    activate(store, vendor.issue(mailserver=None))
    with pytest.raises(SettingError) as refused:
        store.set("email.server_type", value)
    assert str(refused.value) == f"email.server_type: '{label}' is not in this firmware yet"
    assert store.get("email.server_type") == "relay"


def test_the_rule_lists_only_what_can_be_chosen(store):
    with pytest.raises(SettingError, match=r"must be one of standalone, relay$"):
        store.set("email.server_type", "exchange")


def test_retrieval_limit_keeps_its_default_and_refuses_any_other(store):
    with pytest.raises(SettingError) as refused:
        store.set("email.max_retrieve_per_session", "10")
    assert str(refused.value) == ("email.max_retrieve_per_session: 'Maximum messages to "
                                  "retrieve per session' is not in this firmware yet")
    with pytest.raises(SettingError, match="not in this firmware yet"):
        store.set("email.max_retrieve_per_session", "lots")
    assert store.set("email.max_retrieve_per_session", "UNLIMITED") is None  # a saved config loads
    assert declarations()["email.max_retrieve_per_session"].default == "unlimited"


def test_a_stored_type_this_firmware_lacks_runs_as_stand_alone(store, vendor, caplog, monkeypatch):
    monkeypatch.setattr(server_type, "_reported", set())  # once per process: start afresh
    activate(store, vendor.issue(mailserver=None))
    _as_older_firmware_wrote_it(store, "email.server_type", "mirrored")
    settings = store.snapshot()
    assert settings["email.server_type"] == "mirrored", "the database is left as it was"
    with caplog.at_level(logging.WARNING, logger="gatebox.mail"):
        assert server_type.in_effect(settings) == "standalone"
        assert server_type.in_effect(settings) == "standalone"
    warnings = [r.getMessage() for r in caplog.records if "mirrored" in r.getMessage()]
    assert len(warnings) == 1 and "runs as 'standalone'" in warnings[0]
    # Mail for the local domains reaches the mailboxes instead of waiting for a LAN server.
    assert routing.route_local("bob@example.com", "inbound", settings) == \
        ("bob@example.com", routing.LOCAL)
    assert routing.route_local("bob@far.test", "outbound", settings) is None


def test_implemented_types_run_as_stored(store):
    assert server_type.in_effect(store.snapshot()) == "relay"
    assert routing.route_local("bob@example.com", "inbound", store.snapshot()) is None
