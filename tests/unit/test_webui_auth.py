"""Sign-in, first-boot setup gate, idle timeout (the failed sign-in limit: test_login_limits)."""

import time

import pytest

from firmware import accounts
from firmware.config import Store

from test_webui_support import PASSWORD, csrf_token, issue_setup_code, make_app, sign_in


def test_first_boot_leads_everything_to_setup(tmp_path, box_serial):
    client = make_app(tmp_path / "data", admin=False).test_client()
    for path in ("/", "/email-server/queue", "/system/audit", "/login"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.endswith("/setup"), path
    html = client.get("/setup").get_data(as_text=True)
    assert box_serial in html and "License Key" in html
    code = issue_setup_code(tmp_path / "data")
    response = client.post("/setup", data={"csrf_token": csrf_token(client, "/setup"),
                                           "setup_code": code.lower(),  # typed by hand
                                           "password": PASSWORD, "confirm": PASSWORD,
                                           "email__domain": "office.example"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # signed in by setup
    assert client.get("/setup").status_code == 302
    store = Store(tmp_path / "data")
    assert store.get("email.domain") == "office.example"
    assert [u["name"] for u in accounts.list_users(store) if u["is_admin"]] == ["admin"]
    store.close()


def test_only_administrators_sign_in(tmp_path, box_serial):
    app = make_app(tmp_path / "data")
    store = Store(tmp_path / "data")
    accounts.add_user(store, "clerk", "clerk password", admin=False)
    store.close()
    client = app.test_client()
    assert sign_in(client, "clerk", "clerk password").status_code == 401
    assert client.get("/").status_code == 302


def test_idle_timeout_and_password_change_end_the_session(tmp_path, box_serial):
    app = make_app(tmp_path / "data", idle_timeout=60)
    client = app.test_client()
    assert sign_in(client).status_code == 302
    assert client.get("/").status_code == 200
    store = Store(tmp_path / "data")

    def last_seen(seconds_ago: float):
        store.db.execute("UPDATE web_sessions SET seen = ?", [time.time() - seconds_ago])

    # Last seen just inside the idle timeout: still signed in (and seen again now).
    last_seen(59)
    assert client.get("/").status_code == 200
    assert time.time() - store.db.execute("SELECT seen FROM web_sessions").fetchone()[0] < 5
    # Last seen just past it: signed out, and the box forgot the session.
    last_seen(61)
    response = client.get("/")
    assert store.db.execute("SELECT COUNT(*) FROM web_sessions").fetchone()[0] == 0
    store.close()
    assert response.status_code == 302 and "/login" in response.location

    app = make_app(tmp_path / "data2")
    client = app.test_client()
    sign_in(client)
    store = Store(tmp_path / "data2")
    accounts.set_password(store, "admin", "another password")
    store.close()
    assert client.get("/").status_code == 302


def test_session_cookie_flags(tmp_path, box_serial):
    from webui import create_app
    Store.create(tmp_path / "data").close()
    app = create_app(tmp_path / "data", secure_cookies=True)
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-gatebox"
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_HTTPONLY"]
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Strict"


def test_license_expiry_warning_is_on_every_admin_page(tmp_path, licensed):
    import datetime
    app = make_app(tmp_path / "data")
    soon = (datetime.date.today() + datetime.timedelta(days=10)).isoformat()
    licensed(tmp_path / "data", mailserver=soon)
    client = app.test_client()
    sign_in(client)
    for path in ("/", "/email-server/queue", "/system/audit"):
        html = client.get(path).get_data(as_text=True)
        assert "Mail Server SoftPak:" in html and "license-warning" in html, path
