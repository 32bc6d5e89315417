"""The LDAP address list read from Debian's real slapd on loopback: an
Active Directory style entry (proxyAddresses only) and a plain mail entry,
with anonymous reads or with bind authentication, over plain LDAP, StartTLS
and LDAPS; a directory that is down, one that never answers, and one that
changes between syncs."""

import asyncio
import socket
import time

import pytest

from firmware.config import Store
from firmware.mail.verify import ldap_sync
from tests.support.net import wait_until
from tests.support.slapd import BOB_DN, JANE_DN, LdapServer

LISTED = ["bob@example.com", "j.doe@example.com", "jane@example.com"]


@pytest.fixture
def store(tmp_path):
    store = Store.create(tmp_path / "data")
    yield store
    store.close()


@pytest.fixture
def open_directory(tmp_path):
    server = LdapServer(tmp_path / "slapd-open", anonymous=True).start()
    yield server
    server.stop()


@pytest.fixture
def closed_directory(tmp_path):
    server = LdapServer(tmp_path / "slapd-closed", anonymous=False).start()
    yield server
    server.stop()


def settings_for(store, **values):
    return {**store.all(), "email.server_type": "relay", "email.verify_recipient_ldap": True,
            **values}


def listed(store) -> list[str]:
    return [row["address"] for row in store.db.query(
        "SELECT address FROM ldap_addresses ORDER BY address")]


@pytest.mark.parametrize("security", ["none", "starttls", "ldaps"])
def test_an_anonymous_sync_reads_mail_and_smtp_proxy_addresses(store, open_directory, security):
    result = ldap_sync.sync(store, settings_for(store, **open_directory.settings(security)))
    assert result.error == ""
    assert result.succeeded is not None and result.succeeded == result.attempted
    assert result.count == 3
    assert listed(store) == LISTED
    assert ldap_sync.knows(store, "Jane@Example.com") is True
    assert ldap_sync.knows(store, "j.doe@example.com") is True
    assert ldap_sync.knows(store, "bob@example.com") is True
    assert ldap_sync.knows(store, "nobody@example.com") is False
    # Neither the X400 value nor the SIP one, which looks like an address.
    assert not any("x400" in address or "c=us" in address for address in listed(store))
    assert ldap_sync.knows(store, "jane.phone@example.com") is False


def test_the_base_dn_limits_the_search(store, open_directory):
    open_directory.add_person("Carol", "carol@example.com")
    settings = settings_for(store, **{**open_directory.settings(),
                                      "email.ldap_domain": "example.com"})
    assert ldap_sync.sync(store, settings).count == 4
    with open_directory.admin() as admin:
        admin.add("ou=elsewhere,dc=example,dc=com", ["organizationalUnit"])
    settings["email.ldap_domain"] = "ou=elsewhere,dc=example,dc=com"
    result = ldap_sync.sync(store, settings)
    # Nothing under that base: taken as a mistake, never as "nobody exists",
    # so the list read before stays and keeps deciding.
    assert "no addresses" in result.error and result.count == 4
    assert len(listed(store)) == 4
    with open_directory.admin() as admin:
        admin.add("uid=dan,ou=elsewhere,dc=example,dc=com", ["inetOrgPerson"],
                  {"cn": "Dan", "sn": "Dan", "mail": "dan@example.com"})
    result = ldap_sync.sync(store, settings)
    assert (result.error, result.count, listed(store)) == ("", 1, ["dan@example.com"])


def test_a_bound_sync_with_the_right_password_reads_the_list(store, closed_directory):
    result = ldap_sync.sync(store, settings_for(store, **closed_directory.settings("starttls")))
    assert (result.error, result.count) == ("", 3)
    assert listed(store) == LISTED


def test_a_wrong_password_is_recorded_and_the_previous_list_stays(store, closed_directory):
    good = ldap_sync.sync(store, settings_for(store, **closed_directory.settings("starttls")))
    assert good.count == 3
    bad = ldap_sync.sync(store, settings_for(
        store, **closed_directory.settings("starttls", password="wrong")))
    assert bad.error == "bind refused: invalidCredentials"
    assert bad.attempted > good.attempted
    assert (bad.succeeded, bad.count) == (good.succeeded, 3)
    assert listed(store) == LISTED
    assert ldap_sync.knows(store, "jane@example.com") is True
    assert ldap_sync.status(store) == bad


def test_an_anonymous_sync_where_a_bind_is_required_is_refused(store, closed_directory):
    result = ldap_sync.sync(store, settings_for(store, **closed_directory.settings(auth=False)))
    assert result.error.startswith("bind refused: ")
    assert result.succeeded is None
    assert ldap_sync.knows(store, "jane@example.com") is None


def test_a_directory_that_went_down_leaves_the_previous_list(store, open_directory):
    settings = settings_for(store, **open_directory.settings())
    assert ldap_sync.sync(store, settings).count == 3
    open_directory.stop()
    result = ldap_sync.sync(store, settings, timeout=3)
    assert result.error.startswith(f"cannot connect to 127.0.0.1:{open_directory.port}: ")
    assert "refused" in result.error.lower()
    assert result.count == 3 and result.succeeded < result.attempted
    assert ldap_sync.knows(store, "bob@example.com") is True
    assert ldap_sync.knows(store, "mallory@example.com") is False


def test_a_directory_never_reached_leaves_knows_undecided(store, open_directory):
    open_directory.stop()
    result = ldap_sync.sync(store, settings_for(store, **open_directory.settings()), timeout=3)
    assert result.error.startswith("cannot connect to ")
    assert (result.succeeded, result.count) == (None, 0)
    assert ldap_sync.knows(store, "jane@example.com") is None


def test_a_directory_that_never_answers_costs_the_timeout_only(store):
    # A port that accepts connections (the kernel completes them from the
    # backlog) and never says a word: a hung server.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        settings = settings_for(store, **{
            "email.ldap_server": f"127.0.0.1:{silent.getsockname()[1]}",
            "email.ldap_security": "none", "email.ldap_domain": "example.com"})
        started = time.monotonic()
        result = ldap_sync.sync(store, settings, timeout=2)
        took = time.monotonic() - started
    assert result.error.startswith("no answer from 127.0.0.1:") and "within 2 s" in result.error
    assert 1.5 < took < 8
    assert ldap_sync.knows(store, "jane@example.com") is None


def test_ldaps_to_a_plain_ldap_port_fails_with_a_tls_error(store, open_directory):
    settings = settings_for(store, **open_directory.settings("ldaps"))
    settings["email.ldap_server"] = f"ldaps://127.0.0.1:{open_directory.port}"
    result = ldap_sync.sync(store, settings, timeout=3)
    assert result.error.startswith(f"TLS handshake with 127.0.0.1:{open_directory.port} failed")
    assert result.succeeded is None


def test_a_later_sync_drops_deleted_entries_and_adds_new_ones(store, open_directory):
    settings = settings_for(store, **open_directory.settings())
    assert listed(store) == [] and ldap_sync.sync(store, settings).count == 3
    open_directory.delete(JANE_DN)
    open_directory.add_person("Carol", "carol@example.com")
    result = ldap_sync.sync(store, settings)
    assert (result.error, result.count) == ("", 2)
    assert listed(store) == ["bob@example.com", "carol@example.com"]
    assert ldap_sync.knows(store, "jane@example.com") is False
    assert ldap_sync.knows(store, "j.doe@example.com") is False


def test_keep_synced_syncs_when_due_and_on_update_now(store, open_directory):
    settings = settings_for(store, **open_directory.settings("starttls"))

    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(
            ldap_sync.keep_synced(store, lambda: settings, stop, every=0.1, timeout=5))
        try:
            await asyncio.to_thread(wait_until, lambda: ldap_sync.status(store).count == 3,
                                    20, 0.05, "the first sync")
            first = ldap_sync.status(store)
            open_directory.delete(BOB_DN)
            ldap_sync.request_update(store)
            await asyncio.to_thread(wait_until, lambda: ldap_sync.status(store).count == 2,
                                    20, 0.05, "the sync Update Now asked for")
            return first, ldap_sync.status(store)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    first, second = asyncio.run(run())
    assert first.error == "" and second.error == ""
    assert second.attempted > first.attempted
    assert listed(store) == ["j.doe@example.com", "jane@example.com"]
