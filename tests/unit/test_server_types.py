"""Every server type the manuals describe can be chosen with the Mail Server
SoftPak, and each of those but Relay keeps the mailboxes on the box."""

import pytest

from firmware.config import SettingError, declarations
from firmware.licensing import activate
from firmware.mail import server_type
from softpaks.mailserver import routing


@pytest.mark.parametrize("value", ["standalone", "multidrop", "mirrored", "etrn", "mailbag"])
def test_each_mailbox_type_is_chosen_with_the_softpak_and_routes_local_mail_to_mailboxes(
        store, vendor, value):
    with pytest.raises(SettingError, match="Mail Server"):
        store.set("email.server_type", value)
    activate(store, vendor.issue(mailserver=None))
    store.set("email.server_type", value)
    settings = store.snapshot()
    assert server_type.in_effect(settings) == value and server_type.keeps_mailboxes(settings)
    assert routing.route_local("bob@example.com", "inbound", settings) == \
        ("bob@example.com", routing.LOCAL)
    assert routing.route_local("bob@far.test", "outbound", settings) is None
    assert server_type.retrieves(settings) == (value in ("multidrop", "mirrored"))
    assert server_type.triggers(settings) == (value in ("etrn", "mailbag"))


def test_the_rule_lists_what_can_be_chosen(store):
    with pytest.raises(SettingError,
                       match=r"must be one of standalone, relay, multidrop, mirrored, etrn, mailbag$"):
        store.set("email.server_type", "exchange")


def test_retrieval_limit_takes_a_number_or_unlimited(store):
    assert declarations()["email.max_retrieve_per_session"].default == "unlimited"
    store.set("email.max_retrieve_per_session", "10")
    assert store.get("email.max_retrieve_per_session") == 10
    with pytest.raises(SettingError, match="whole number"):
        store.set("email.max_retrieve_per_session", "lots")
    store.set("email.max_retrieve_per_session", "UNLIMITED")
    assert store.get("email.max_retrieve_per_session") == "unlimited"


def test_relay_runs_as_stored_without_mailboxes(store):
    assert server_type.in_effect(store.snapshot()) == "relay"
    assert not server_type.keeps_mailboxes(store.snapshot())
    assert routing.route_local("bob@example.com", "inbound", store.snapshot()) is None
