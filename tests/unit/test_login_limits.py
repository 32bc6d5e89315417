"""The login limiter (firmware/login_limits.py): per client (IPv4, IPv6 /64)
and per account, kept in SQLite, with a clock the test turns."""

import pytest

from firmware import accounts
from firmware.config import Store
from firmware.login_limits import ADMIN, MAIL, Limits, LoginLimiter, Outcome, client_key

from test_webui_support import PASSWORD, csrf_token, make_app, sign_in

GOOD = "right password"


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def store(tmp_path):
    store = Store.create(tmp_path / "data")
    accounts.add_user(store, "bob", GOOD)
    accounts.add_user(store, "root", GOOD, admin=True)
    yield store
    store.close()


@pytest.fixture
def clock():
    return Clock()


def attempt(limiter, store, client, name="bob", password="wrong", realm=MAIL):
    return limiter.attempt(store, realm, client, name,
                           lambda: accounts.authenticate_mail(store, name, password), "smtp")


def test_client_keys():
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("fe80::1%eth0") == "fe80::/64"


def test_a_guessing_client_is_locked_out_even_with_the_right_password(store, clock):
    limiter = LoginLimiter(clock=clock)
    for _ in range(4):
        assert attempt(limiter, store, "192.0.2.7").outcome is Outcome.WRONG
        clock.now += 10
    fifth = attempt(limiter, store, "192.0.2.7")
    assert fifth.outcome is Outcome.WRONG and fifth.lockout is not None
    locked = attempt(limiter, store, "192.0.2.7", password=GOOD)
    assert locked.outcome is Outcome.LOCKED and locked.lockout.kind == "client"
    # Another client signs in as the same account.
    assert attempt(limiter, store, "192.0.2.8", password=GOOD).outcome is Outcome.OK
    # The audit log has the lockout.
    assert any(row["what"] == "lockout: mail logins from 192.0.2.7" for row in store.audit_log())
    # The period ends: the right password works again.
    clock.now += Limits().client_lock + 1
    assert attempt(limiter, store, "192.0.2.7", password=GOOD).outcome is Outcome.OK


def test_the_backoff_doubles_for_a_client_locked_again(store, clock):
    limiter = LoginLimiter(clock=clock)
    lock = None
    for _ in range(5):
        lock = attempt(limiter, store, "192.0.2.7").lockout or lock
    assert lock.until - lock.since == 15 * 60
    clock.now = lock.until + 1
    for _ in range(4):
        assert attempt(limiter, store, "192.0.2.7").lockout is None  # its count started again
    second = attempt(limiter, store, "192.0.2.7").lockout
    assert second.until - second.since == 30 * 60


def test_an_ipv6_64_is_one_client(store, clock):
    limiter = LoginLimiter(clock=clock)
    for host in range(5):
        attempt(limiter, store, f"2001:db8:0:1::{host + 1}")
    assert attempt(limiter, store, "2001:db8:0:1::99", password=GOOD).outcome is Outcome.LOCKED
    assert attempt(limiter, store, "2001:db8:0:2::1", password=GOOD).outcome is Outcome.OK


def test_an_account_locks_after_many_failures_from_many_clients_until_unlocked(store, clock):
    limiter = LoginLimiter(clock=clock)
    for n in range(20):
        attempt(limiter, store, f"198.51.100.{n % 4 + 1}")  # 4 clients, 5 each
        clock.now += 60
    refused = attempt(limiter, store, "203.0.113.1", password=GOOD)
    assert refused.outcome is Outcome.LOCKED and refused.lockout.kind == "account"
    assert "bob" in limiter.locked_accounts(store)
    # Another account is not affected.
    accounts.add_user(store, "carol", GOOD)
    assert attempt(limiter, store, "203.0.113.1", "carol", GOOD).outcome is Outcome.OK
    assert limiter.unlock_account(store, "bob", actor="admin")
    assert attempt(limiter, store, "203.0.113.1", password=GOOD).outcome is Outcome.OK
    assert any(row["what"] == "unlock account bob" for row in store.audit_log())
    assert not limiter.unlock_account(store, "bob", actor="admin")


def test_many_failures_from_one_client_lock_the_client_not_the_account(store, clock):
    limiter = LoginLimiter(Limits(client_failures=100), clock=clock)
    for _ in range(30):
        attempt(limiter, store, "192.0.2.7")
    assert limiter.locked_accounts(store) == {}


def test_a_restart_forgives_nothing(tmp_path, store, clock):
    limiter = LoginLimiter(clock=clock)
    for _ in range(5):
        attempt(limiter, store, "192.0.2.7")
    store.close()
    reopened = Store(tmp_path / "data")
    try:
        again = LoginLimiter(clock=clock)
        assert attempt(again, reopened, "192.0.2.7", password=GOOD).outcome is Outcome.LOCKED
    finally:
        reopened.close()


def test_success_forgives_only_that_account(store, clock):
    limiter = LoginLimiter(clock=clock)
    for _ in range(4):
        attempt(limiter, store, "192.0.2.7", name="guessed")
    assert attempt(limiter, store, "192.0.2.7", password=GOOD).outcome is Outcome.OK
    assert attempt(limiter, store, "192.0.2.7", name="guessed").lockout is not None


def test_a_success_with_nothing_to_forgive_writes_nothing(store, clock):
    limiter = LoginLimiter(clock=clock)
    attempt(limiter, store, "192.0.2.8", name="bob")          # one failure of bob's
    before = store.db.conn.total_changes
    assert attempt(limiter, store, "192.0.2.9", password=GOOD).outcome is Outcome.OK
    assert store.db.conn.total_changes == before               # another client: nothing to forgive
    assert attempt(limiter, store, "192.0.2.8", password=GOOD).outcome is Outcome.OK
    assert store.db.conn.total_changes == before + 1           # its own failure forgiven
    assert store.db.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0] == 0


def test_administrators_are_not_mail_accounts(store):
    assert accounts.authenticate_mail(store, "bob", GOOD)
    assert not accounts.authenticate_mail(store, "root", GOOD)
    assert accounts.authenticate_admin(store, "root", GOOD)
    assert not accounts.authenticate_admin(store, "bob", GOOD)


def test_mail_and_web_sign_ins_are_counted_apart(store, clock):
    limiter = LoginLimiter(clock=clock)
    for _ in range(5):
        attempt(limiter, store, "192.0.2.7")
    web = limiter.attempt(store, ADMIN, "192.0.2.7", "root",
                          lambda: accounts.authenticate_admin(store, "root", GOOD), "web")
    assert web.outcome is Outcome.OK


# ---- the web admin's sign-in -------------------------------------------------------------
def web_app(data_dir, clock):
    """The admin open to every address (these tests come from the Internet's
    documentation ranges), with the test's clock in its limiter."""
    app = make_app(data_dir)
    store = Store(data_dir)
    store.set("system.admin_allow_from", "any")
    store.close()
    limiter = app.extensions["login_limiter"] = LoginLimiter(clock=clock)
    return app, limiter


def web_client(app, address):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_web_sign_in_locks_an_ipv6_64_and_says_to_wait(tmp_path, box_serial, clock):
    app, _ = web_app(tmp_path / "data", clock)
    for host in range(5):
        response = sign_in(web_client(app, f"2001:db8:5:6::{host + 1}"), password="wrong")
        assert response.status_code == 401
    guesser = web_client(app, "2001:db8:5:6::77")
    refused = sign_in(guesser)  # the right password
    assert refused.status_code == 429
    assert "try again in 15 minutes" in refused.get_data(as_text=True)
    assert sign_in(web_client(app, "2001:db8:5:7::1")).status_code == 302
    clock.now += 15 * 60 + 1
    assert sign_in(guesser).status_code == 302


def test_web_account_lock_is_shown_and_lifted_on_the_administrators_page(tmp_path, box_serial,
                                                                         clock):
    app, limiter = web_app(tmp_path / "data", clock)
    for n in range(20):
        sign_in(web_client(app, f"198.51.100.{n % 4 + 1}"), password="wrong")
    assert sign_in(web_client(app, "203.0.113.9")).status_code == 429
    store = Store(tmp_path / "data")
    accounts.add_user(store, "second", PASSWORD, admin=True)
    store.close()
    other = web_client(app, "203.0.113.9")
    assert sign_in(other, "second").status_code == 302
    page = other.get("/system/administrators").get_data(as_text=True)
    assert "Locked: 20 failed logins from 4 clients" in page
    audit = other.get("/system/audit").get_data(as_text=True)
    assert "lockout: admin logins as admin" in audit
    response = other.post("/users-groups/users/unlock", data={
        "csrf_token": csrf_token(other, "/system/administrators"), "name": "admin",
        "back": "admins"})
    assert response.status_code == 302
    store = Store(tmp_path / "data")
    assert "admin" not in limiter.locked_accounts(store)
    store.close()
    assert sign_in(web_client(app, "203.0.113.9")).status_code == 302


def test_an_administrator_lifts_a_client_lockout_by_hand(store, clock):
    limiter = LoginLimiter(clock=clock)
    for host in range(5):
        attempt(limiter, store, f"2001:db8:0:1::{host + 1}")
    assert attempt(limiter, store, "2001:db8:0:1::99", password=GOOD).outcome is Outcome.LOCKED
    # Any address of the /64 names it; a second unlock finds nothing to lift.
    assert limiter.unlock_client(store, "2001:db8:0:1::abcd", actor="test")
    assert not limiter.unlock_client(store, "2001:db8:0:1::abcd", actor="test")
    assert attempt(limiter, store, "2001:db8:0:1::99", password=GOOD).outcome is Outcome.OK
    assert any(row["what"] == "unlock client 2001:db8:0:1::/64" for row in store.audit_log())
