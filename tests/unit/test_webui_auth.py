"""Sign-in, first-boot setup gate, idle timeout, the failed sign-in throttle."""

import pytest

from firmware import accounts
from firmware.config import Store
from webui.throttle import LOCK_AFTER, WINDOW, LoginThrottle

from test_webui_support import PASSWORD, csrf_token, make_app, sign_in


def test_first_boot_leads_everything_to_setup(tmp_path, box_serial):
    client = make_app(tmp_path / "data", admin=False).test_client()
    for path in ("/", "/email-server/queue", "/system/audit", "/login"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.endswith("/setup"), path
    html = client.get("/setup").get_data(as_text=True)
    assert box_serial in html and "License Key" in html
    response = client.post("/setup", data={"csrf_token": csrf_token(client, "/setup"),
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
    # Last seen just inside the idle timeout: still signed in (and seen again now).
    with client.session_transaction() as session:
        session["seen"] -= 59
    assert client.get("/").status_code == 200
    # Last seen just past it: signed out.
    with client.session_transaction() as session:
        session["seen"] -= 61
    response = client.get("/")
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


def test_failed_sign_ins_are_slowed_then_locked():
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    assert throttle.wait_seconds("10.0.0.5") == 0
    throttle.failed("10.0.0.5")
    assert throttle.wait_seconds("10.0.0.5") == pytest.approx(1)
    assert throttle.wait_seconds("10.0.0.6") == 0  # per client
    for _ in range(LOCK_AFTER - 1):
        now[0] += 61
        throttle.failed("10.0.0.5")
    assert throttle.wait_seconds("10.0.0.5") > 0  # locked even after a minute
    now[0] = 1000.0 + WINDOW + 1
    assert throttle.wait_seconds("10.0.0.5") == 0
    throttle.failed("10.0.0.7")
    throttle.succeeded("10.0.0.7")
    assert throttle.wait_seconds("10.0.0.7") == 0


def test_open_redirect_after_sign_in_is_refused(tmp_path, box_serial):
    client = make_app(tmp_path / "data").test_client()
    token = csrf_token(client, "/login")
    response = client.post("/login?next=//evil.example/x",
                           data={"csrf_token": token, "name": "admin", "password": PASSWORD})
    assert response.location == "/"


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
