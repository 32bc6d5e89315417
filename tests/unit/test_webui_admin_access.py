"""Allow Administration From: every page, sign-in and setup included, only
for the clients it names (the Trusted Networks by default); first-boot setup
also needs the one-time setup code."""

import pytest

from firmware.config import SettingError, Store
from firmware.system import setup_code

from test_webui_support import PASSWORD, csrf_token, issue_setup_code, make_app, sign_in

WAN_CLIENT = "203.0.113.5"
PAGES = ("/", "/login", "/setup", "/system/audit", "/static/style.css", "/help/setup")


def _client(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _set(data_dir, key, value):
    store = Store(data_dir)
    store.set(key, value)
    store.close()


@pytest.mark.parametrize("path", PAGES)
def test_a_client_off_the_trusted_networks_sees_no_page(tmp_path, box_serial, path):
    app = make_app(tmp_path / "data")
    response = _client(app, WAN_CLIENT).get(path)
    assert response.status_code == 403
    text = response.get_data(as_text=True)
    assert "Allow Administration From" in text and WAN_CLIENT in text
    assert "gatebox config set system.admin_allow_from" in text


def test_the_default_lets_in_loopback_and_the_lan(tmp_path, box_serial):
    app = make_app(tmp_path / "data")
    for address in ("127.0.0.1", "::1", "10.0.2.2", "192.168.1.20", "172.16.4.4"):
        assert _client(app, address).get("/login").status_code == 200, address
    for address in (WAN_CLIENT, "2001:db8::1", "8.8.8.8"):
        assert _client(app, address).get("/login").status_code == 403, address


def test_sign_in_from_the_wan_is_refused_even_with_the_password(tmp_path, box_serial):
    app = make_app(tmp_path / "data")
    lan = _client(app, "127.0.0.1")
    token = csrf_token(lan, "/login")
    wan = _client(app, WAN_CLIENT)
    wan.set_cookie("gatebox", lan.get_cookie("gatebox").value)
    response = wan.post("/login", data={"csrf_token": token, "name": "admin", "password": PASSWORD})
    assert response.status_code == 403


def test_the_setting_follows_trusted_networks_or_names_its_own(tmp_path, box_serial):
    data = tmp_path / "data"
    app = make_app(data)
    _set(data, "email.trusted_networks", "127.0.0.1,203.0.113.0/24")
    assert _client(app, WAN_CLIENT).get("/login").status_code == 200
    assert _client(app, "10.0.2.2").get("/login").status_code == 403
    _set(data, "system.admin_allow_from", "198.51.100.0/24, 2001:db8::/64")
    assert _client(app, "198.51.100.7").get("/login").status_code == 200
    assert _client(app, "2001:db8::7").get("/login").status_code == 200
    assert _client(app, WAN_CLIENT).get("/login").status_code == 403
    assert _client(app, "127.0.0.1").get("/login").status_code == 403
    _set(data, "system.admin_allow_from", "any")
    assert _client(app, WAN_CLIENT).get("/login").status_code == 200


def test_a_signed_in_session_is_no_use_from_outside(tmp_path, box_serial):
    app = make_app(tmp_path / "data")
    lan = _client(app, "127.0.0.1")
    assert sign_in(lan).status_code == 302
    wan = _client(app, WAN_CLIENT)
    wan.set_cookie("gatebox", lan.get_cookie("gatebox").value)
    assert wan.get("/system/audit").status_code == 403


@pytest.mark.parametrize("raw, stored", [
    ("", "trusted"), ("trusted", "trusted"), ("Trusted Networks", "trusted"), ("any", "any"),
    ("*", "any"), ("10.1.2.0/24, fd00::/8", "10.1.2.0/24,fd00::/8"), ("10.1.2.3", "10.1.2.3"),
])
def test_allow_administration_from_values(tmp_path, raw, stored):
    store = Store.create(tmp_path / "data")
    store.set("system.admin_allow_from", raw)
    assert store.get("system.admin_allow_from") == stored
    store.close()


@pytest.mark.parametrize("raw", ["everyone", "10.1.2.0/33", "example.com"])
def test_allow_administration_from_refuses_other_values(tmp_path, raw):
    store = Store.create(tmp_path / "data")
    with pytest.raises(SettingError, match="'trusted'"):
        store.set("system.admin_allow_from", raw)
    assert store.get("system.admin_allow_from") == "trusted"
    store.close()


def _post_setup(client, code):
    return client.post("/setup", data={"csrf_token": csrf_token(client, "/setup"),
                                       "setup_code": code, "password": PASSWORD,
                                       "confirm": PASSWORD, "email__domain": "office.example"})


def _admins(data_dir) -> int:
    store = Store(data_dir)
    try:
        return int(setup_code.admin_exists(store))
    finally:
        store.close()


@pytest.mark.parametrize("code", ["", "WRONG-CODE-HERE", "2345-6789-ABCD"])
def test_setup_without_the_right_code_makes_no_administrator(tmp_path, box_serial, code):
    data = tmp_path / "data"
    client = make_app(data, admin=False).test_client()
    issue_setup_code(data)
    response = _post_setup(client, code)
    assert response.status_code == 400
    assert 'id="setup_code-rule"' in response.get_data(as_text=True)
    assert _admins(data) == 0


def test_only_the_last_code_works_and_none_after_setup(tmp_path, box_serial):
    data = tmp_path / "data"
    client = make_app(data, admin=False).test_client()
    first = issue_setup_code(data)
    second = issue_setup_code(data)
    assert _post_setup(client, first).status_code == 400
    assert _post_setup(client, " " + second.replace("-", "").lower() + " ").status_code == 302
    assert _admins(data) == 1
    store = Store(data)
    assert not setup_code.matches(store, second)
    with pytest.raises(setup_code.SetupDone):
        setup_code.issue(store)
    assert store.db.execute("SELECT 1 FROM meta WHERE key = ?",
                            [setup_code.META_KEY]).fetchone() is None
    store.close()


def test_setup_page_asks_for_the_code_and_says_where_it_is(tmp_path, box_serial):
    html = make_app(tmp_path / "data", admin=False).test_client().get("/setup").get_data(as_text=True)
    assert 'name="setup_code"' in html and "gatebox setup-code" in html and "serial port" in html


def _post_setup_license(client, code):
    return client.post("/setup/license", data={"csrf_token": csrf_token(client, "/setup"),
                                               "setup_code": code, "key": "not a key"},
                       follow_redirects=True)


def test_license_activation_during_setup_needs_the_code(tmp_path, box_serial):
    data = tmp_path / "data"
    client = make_app(data, admin=False).test_client()
    code = issue_setup_code(data)
    html = client.get("/setup").get_data(as_text=True)
    assert html.count('name="setup_code"') == 2   # the setup form and the license form
    refused = _post_setup_license(client, "WRONG-CODE-HERE").get_data(as_text=True)
    assert "the Setup Code does not match" in refused
    store = Store(data)
    audit_before = len(store.audit_log())
    store.close()
    # With the code, the key itself is judged (and this one is no key).
    judged = _post_setup_license(client, code).get_data(as_text=True)
    assert "the Setup Code does not match" not in judged and "License not activated" in judged
    store = Store(data)
    assert len(store.audit_log()) == audit_before
    store.close()
