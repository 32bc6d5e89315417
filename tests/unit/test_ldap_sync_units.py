"""The LDAP address list without a directory: the base DN, which directory
values become addresses, when a sync is due, and the ldap_sync row read as
the hostile input it may be. The sync itself runs against a real slapd in
tests/integration/test_ldap_sync.py."""

import asyncio

import pytest

from firmware.config import Store, transaction
from firmware.mail.verify import ldap_sync
from firmware.mail.verify.ldap_sync import SyncStatus

MINUTE = 60.0
NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path):
    store = Store.create(tmp_path / "data")
    yield store
    store.close()


def write_row(store, **columns):
    names = ", ".join(["id", *columns])
    marks = ", ".join("?" * (len(columns) + 1))
    with transaction(store.db):
        store.db.execute("DELETE FROM ldap_sync")
        store.db.execute(f"INSERT INTO ldap_sync({names}) VALUES ({marks})", [1, *columns.values()])


def write_raw_row(store, sql_values: str):
    """A row with values of any SQLite type, as a hand edit could leave it; the
    table's CHECK and NOT NULL still apply, the declared types do not."""
    with transaction(store.db):
        store.db.execute("DELETE FROM ldap_sync")
        store.db.execute("INSERT INTO ldap_sync(id, attempted, succeeded, count, error, requested) "
                         f"VALUES (1, {sql_values})")


# ---- base DN ---------------------------------------------------------------
@pytest.mark.parametrize("given, expected", [
    ("example.com", "dc=example,dc=com"),
    ("Corp.Example.COM", "dc=corp,dc=example,dc=com"),
    ("example.com.", "dc=example,dc=com"),
    ("  example.com ", "dc=example,dc=com"),
    ("ou=people,dc=example,dc=com", "ou=people,dc=example,dc=com"),
    ("OU=Staff,DC=Example,DC=com", "OU=Staff,DC=Example,DC=com"),
    ("cn=Doe\\, Jane,ou=people,dc=example,dc=com", "cn=Doe\\, Jane,ou=people,dc=example,dc=com"),
    ("OU=Domain Users,DC=corp,DC=example", "OU=Domain Users,DC=corp,DC=example"),
])
def test_base_dn_from_a_domain_or_as_given(given, expected):
    assert ldap_sync.base_dn(given) == expected


@pytest.mark.parametrize("garbage, says", [
    ("", "no LDAP Domain"),
    ("   ", "no LDAP Domain"),
    ("exa mple.com", "neither a base DN"),
    ("example..com", "neither a base DN"),
    ("-example.com", "neither a base DN"),
    ("example.com/evil", "neither a base DN"),
    ("ou=people,,dc=example", "not a valid DN"),
    ("=example", "not a valid DN"),
    ("dc=example\ndc=com", "control characters"),
])
def test_base_dn_refuses_garbage_and_says_why(garbage, says):
    with pytest.raises(ValueError, match=says):
        ldap_sync.base_dn(garbage)


# ---- directory values --------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("SMTP:Jane@Example.com", "jane@example.com"),
    ("smtp:j.doe@example.com", "j.doe@example.com"),
    ("sMtP: padded@example.com ", "padded@example.com"),
    (b"SMTP:bytes@example.com", "bytes@example.com"),
    ("X400:c=US;a= ;p=Org;o=Ex;s=Doe;", None),
    ("x500:/o=Org/ou=Exchange/cn=Recipients/cn=jane", None),
    ("SIP:jane@example.com", None),
    ("jane@example.com", None),          # no type: not an AD SMTP value
    ("SMTP:", None),
    ("SMTP:not-an-address", None),
    ("SMTP:a@b@example.com", None),
    ("SMTP:user%other@example.com", None),
    ("SMTP:\"quoted\"@example.com", None),
    ("SMTP:jane@exa_mple.com", None),
    ("SMTP:jane@[192.0.2.1]", None),
    ("SMTP:ja\rne@example.com", None),
    ("SMTP:<jane@example.com>", None),
    (b"SMTP:\xff@example.com", None),
    (None, None),
    (42, None),
])
def test_proxy_addresses_give_only_their_smtp_values(value, expected):
    assert ldap_sync.proxy_address(value) == expected


def test_an_entry_gives_its_mail_and_smtp_proxy_addresses():
    attributes = {"mail": [b"Bob@Example.com"],
                  "proxyAddresses": [b"SMTP:bob@example.com", b"smtp:robert@example.com",
                                     b"X400:c=US;a= ;p=Org;o=Ex;s=Smith;"],
                  "cn": [b"someone@example.com"]}
    assert sorted(set(ldap_sync.addresses_of(attributes))) == ["bob@example.com",
                                                               "robert@example.com"]


def test_a_mail_value_must_be_a_clean_address():
    assert ldap_sync.addresses_of({"mail": [b"ok@example.com", b"bad address@example.com",
                                            b"x" * 250 + b"@example.com", b"nodomain"]}) == \
        ["ok@example.com"]
    assert ldap_sync.addresses_of({"mail": "not-a-list@example.com"}) == []
    assert ldap_sync.addresses_of(None) == []


# ---- server setting -------------------------------------------------------------
@pytest.mark.parametrize("server, security, expected", [
    ("ldap.example.com", "starttls", ("ldap.example.com", 389, "starttls")),
    ("ldap.example.com", "ldaps", ("ldap.example.com", 636, "ldaps")),
    ("ldap.example.com:3389", "none", ("ldap.example.com", 3389, "none")),
    ("ldaps://dc1.example.com", "starttls", ("dc1.example.com", 636, "ldaps")),
    ("ldaps://dc1.example.com:3269/", "none", ("dc1.example.com", 3269, "ldaps")),
    ("ldap://dc1.example.com", "starttls", ("dc1.example.com", 389, "starttls")),
    ("[::1]:10389", "none", ("::1", 10389, "none")),
])
def test_the_server_setting_gives_host_port_and_security(server, security, expected):
    assert ldap_sync._endpoint({"email.ldap_server": server,
                                "email.ldap_security": security}) == expected


@pytest.mark.parametrize("server, says", [
    ("", "no LDAP Server"),
    ("http://ldap.example.com", "not host"),
    ("ldap.example.com:port", "not a number"),
    ("ldap.example.com:70000", "not host"),
])
def test_a_bad_server_setting_is_a_sync_failure_not_a_crash(server, says):
    with pytest.raises(ldap_sync.SyncFailed, match=says):
        ldap_sync._endpoint({"email.ldap_server": server, "email.ldap_security": "none"})


def test_a_bad_setting_is_recorded_by_sync(store):
    settings = {**store.all(), "email.ldap_server": "", "email.ldap_domain": "example.com"}
    result = ldap_sync.sync(store, settings)
    assert result.attempted is not None and result.succeeded is None
    assert result.error == "no LDAP Server is set"
    assert ldap_sync.knows(store, "jane@example.com") is None


# ---- status and knows -------------------------------------------------------------
def test_status_before_any_sync_is_never(store):
    assert ldap_sync.status(store) == SyncStatus(None, None, 0, "")
    assert ldap_sync.knows(store, "jane@example.com") is None


def test_status_reads_the_row(store):
    write_row(store, attempted=NOW, succeeded=NOW - 60, count=2, error="bind refused: x")
    assert ldap_sync.status(store) == SyncStatus(NOW, NOW - 60, 2, "bind refused: x")


@pytest.mark.parametrize("sql_values", [
    "'yesterday', 'soon', 'many', 7, x'00'",
    "x'31', x'31', 1.5, 0, NULL",
    "-5, -5, -1, '', NULL",
    "1e999, 1e999, 9.9, '', NULL",
])
def test_a_hand_edited_row_reads_as_never(store, sql_values):
    write_raw_row(store, sql_values)
    result = ldap_sync.status(store)
    assert (result.attempted, result.succeeded, result.count) == (None, None, 0)
    assert isinstance(result.error, str)
    assert ldap_sync.knows(store, "jane@example.com") is None
    assert ldap_sync.is_due(store, {"email.ldap_refresh": "60"}, NOW)


def test_a_long_error_is_cut(store):
    write_row(store, attempted=NOW, succeeded=NOW, count=0, error="x" * 5000)
    assert len(ldap_sync.status(store).error) == ldap_sync.MAX_ERROR


def test_knows_answers_from_the_list_once_a_sync_worked(store):
    write_row(store, attempted=NOW, succeeded=NOW, count=1, error="")
    with transaction(store.db):
        store.db.execute("INSERT INTO ldap_addresses(address) VALUES ('jane@example.com')")
    assert ldap_sync.knows(store, "Jane@Example.COM") is True
    assert ldap_sync.knows(store, " jane@example.com ") is True
    assert ldap_sync.knows(store, "john@example.com") is False


# ---- when a sync is due ---------------------------------------------------------------
def every(minutes):
    return {"email.ldap_refresh": str(minutes)}


def test_due_when_never_tried(store):
    assert ldap_sync.is_due(store, every(60), NOW)


def test_due_after_the_refresh_interval_of_a_good_sync(store):
    write_row(store, attempted=NOW, succeeded=NOW, count=3, error="")
    assert not ldap_sync.is_due(store, every(60), NOW + 59 * MINUTE)
    assert ldap_sync.is_due(store, every(60), NOW + 60 * MINUTE)
    assert ldap_sync.is_due(store, every(15), NOW + 15 * MINUTE)


def test_a_failed_sync_is_retried_after_five_minutes_at_most(store):
    write_row(store, attempted=NOW, succeeded=NOW - 3600, count=3, error="cannot connect")
    assert not ldap_sync.is_due(store, every(1440), NOW + 4 * MINUTE)
    assert ldap_sync.is_due(store, every(1440), NOW + 5 * MINUTE)
    write_row(store, attempted=NOW, succeeded=None, count=0, error="cannot connect")
    assert ldap_sync.is_due(store, every(1440), NOW + 5 * MINUTE)


def test_update_now_makes_it_due_at_once(store):
    write_row(store, attempted=NOW, succeeded=NOW, count=3, error="")
    assert not ldap_sync.is_due(store, every(60), NOW + 1)
    ldap_sync.request_update(store, now=NOW + 1)
    assert ldap_sync.is_due(store, every(60), NOW + 2)
    # A request older than the last attempt was already served.
    write_row(store, attempted=NOW + 3, succeeded=NOW + 3, count=3, error="", requested=NOW + 1)
    assert not ldap_sync.is_due(store, every(60), NOW + 4)


def test_an_attempt_in_the_future_does_not_block_syncs(store):
    # After the clock was set back, a last attempt "tomorrow" would otherwise stop every sync.
    write_row(store, attempted=NOW + 86400, succeeded=NOW + 86400, count=3, error="")
    assert ldap_sync.is_due(store, every(60), NOW)


def test_a_strange_refresh_value_reads_as_an_hour(store):
    write_row(store, attempted=NOW, succeeded=NOW, count=3, error="")
    assert not ldap_sync.is_due(store, {"email.ldap_refresh": "soon"}, NOW + 59 * MINUTE)
    assert ldap_sync.is_due(store, {"email.ldap_refresh": "soon"}, NOW + 60 * MINUTE)


# ---- the loop ---------------------------------------------------------------------------
def test_keep_synced_leaves_the_directory_alone_unless_ldap_verification_is_on(store):
    settings = {**store.all(), "email.server_type": "standalone",
                "email.verify_recipient_ldap": True, "email.ldap_server": "127.0.0.1:1"}
    asked = []

    def current():
        asked.append(1)
        return settings

    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(ldap_sync.keep_synced(store, current, stop, every=0.01))
        while len(asked) < 3:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    # Three rounds looked at the settings; none tried the (unreachable) server.
    assert ldap_sync.status(store).attempted is None


def test_keep_synced_ends_promptly_when_told(store):
    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(ldap_sync.keep_synced(store, store.snapshot, stop))
        await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(task, 2)   # far less than the 30 s between rounds

    asyncio.run(run())
