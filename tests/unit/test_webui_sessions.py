"""Sessions the box keeps: a cookie copied before sign-out or a password
change is refused afterwards, and the cookie itself names nobody."""

import base64
import json
import time

import pytest

from firmware import accounts
from firmware.config import Store
from webui import sessions

from test_webui_support import csrf_token, make_app, sign_in

COOKIE = "gatebox"  # the plain-HTTP name make_app's apps use


@pytest.fixture
def app(tmp_path, box_serial):
    app = make_app(tmp_path / "data")
    app.data_dir = tmp_path / "data"
    return app


def _signed_in(app):
    client = app.test_client()
    assert sign_in(client).status_code == 302
    return client


def _copy(app, cookie: str):
    """Another browser holding a copy of the cookie."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie)
    return thief


def _session_rows(app) -> int:
    store = Store(app.data_dir)
    try:
        return store.db.execute("SELECT COUNT(*) FROM web_sessions").fetchone()[0]
    finally:
        store.close()


def test_a_cookie_copied_before_sign_out_is_refused_after(app):
    client = _signed_in(app)
    copied = client.get_cookie(COOKIE).value
    assert _copy(app, copied).get("/").status_code == 200  # the copy works while signed in
    token = csrf_token(client, "/system/administrators")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert _session_rows(app) == 0
    refused = _copy(app, copied).get("/system/audit")
    assert refused.status_code == 302 and "/login" in refused.location
    assert client.get("/").status_code == 302


def test_a_cookie_copied_before_a_password_change_is_refused_after(app):
    client = _signed_in(app)
    other = _signed_in(app)  # the same administrator in a second browser
    copied = client.get_cookie(COOKIE).value
    token = csrf_token(other, "/system/administrators")
    changed = other.post("/users-groups/users/password",
                         data={"csrf_token": token, "name": "admin", "password": "a new password 1",
                               "back": "admins"})
    assert changed.status_code == 302
    assert _copy(app, copied).get("/").status_code == 302
    assert client.get("/").status_code == 302
    assert sign_in(app.test_client(), password="a new password 1").status_code == 302


def test_signing_out_ends_only_that_session(app):
    first, second = _signed_in(app), _signed_in(app)
    first.post("/logout", data={"csrf_token": csrf_token(first, "/system/administrators")})
    assert first.get("/").status_code == 302
    assert second.get("/").status_code == 200


def test_the_cookie_holds_a_token_not_the_administrator(app):
    client = _signed_in(app)
    payload = client.get_cookie(COOKIE).value.split(".")[0]
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert "admin" not in data and set(data) <= {sessions.COOKIE_KEY, "csrf_token", "_permanent",
                                                  "_flashes"}
    store = Store(app.data_dir)
    stored = store.db.execute("SELECT token_hash FROM web_sessions").fetchone()[0]
    store.close()
    assert stored != data[sessions.COOKIE_KEY]  # only its hash is kept


def test_a_busy_session_still_ends_after_its_maximum_lifetime(app):
    client = _signed_in(app)
    store = Store(app.data_dir)
    store.db.execute("UPDATE web_sessions SET created = ?",
                     [time.time() - sessions.MAX_LIFETIME_SECONDS - 1])
    store.close()
    assert client.get("/").status_code == 302


def test_a_deleted_administrator_is_signed_out(app):
    client = _signed_in(app)
    store = Store(app.data_dir)
    accounts.add_user(store, "second", "second password", admin=True)
    store.db.execute("DELETE FROM accounts WHERE name = 'admin'")
    store.close()
    assert client.get("/").status_code == 302
