"""Email Server > Remote POP and the Users page's ISP Login fields through
Flask's test client: the SoftPak fallback, CSRF on every form, field rules
for hostile input, and a password that is never sent back to the browser."""

import re

import pytest

from firmware import accounts
from firmware.config import Store
from softpaks.mailserver.retrieval import isp_accounts

from test_webui_support import csrf_token, field_rule, make_app, sign_in

PAGE = "/email-server/remote-pop"
EDIT = PAGE + "/edit"
USERS = "/users-groups/users"
ISP_LOGIN = "/users-groups/mail/isp-login"
SECRET = "remote s3cret pass"


@pytest.fixture
def client(tmp_path, box_serial):
    app = make_app(tmp_path / "data")
    store = Store(tmp_path / "data")
    accounts.add_user(store, "bob", "bob password 1")
    store.close()
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir = tmp_path / "data"
    return client


@pytest.fixture
def licensed_client(client, licensed):
    licensed(client.data_dir, mailserver=None)
    _with_store(client, lambda store: store.set("email.server_type", "standalone", actor="test"))
    return client


def _with_store(client, read):
    store = Store(client.data_dir)
    try:
        return read(store)
    finally:
        store.close()


def _remote(client):
    return _with_store(client, isp_accounts.remote_accounts)


def _form(token, **fields):
    return {"csrf_token": token, "host": "pop.isp.test", "port": "", "protocol": "pop3",
            "tls": "tls", "verify": "y", "login": "old.bob", "password": SECRET,
            "recipient": "bob", "enabled": "y", "operation": "apply", **fields}


def test_unlicensed_page_offers_the_softpak_and_refuses_a_post(client):
    html = client.get(PAGE).get_data(as_text=True)
    assert 'class="softpak-offer"' in html and "not licensed" in html
    token = csrf_token(client, "/system/licenses")
    assert client.post(EDIT, data=_form(token)).status_code == 403
    assert _remote(client) == []


def test_an_account_is_added_listed_and_its_password_never_shown(licensed_client):
    token = csrf_token(licensed_client, EDIT)
    response = licensed_client.post(EDIT, data=_form(token))
    assert response.status_code == 302, response.get_data(as_text=True)
    [account] = _remote(licensed_client)
    assert (account.host, account.port, account.protocol, account.tls, account.verify,
            account.login, account.recipient, account.password_set) == (
        "pop.isp.test", 995, "pop3", "tls", True, "old.bob", "bob", True)

    listing = licensed_client.get(PAGE).get_data(as_text=True)
    assert "pop.isp.test" in listing and "old.bob" in listing and "not fetched yet" in listing
    edit = licensed_client.get(f"{EDIT}?name={account.id}").get_data(as_text=True)
    assert 'value="old.bob"' in edit and "A password is stored" in edit
    for html in (listing, edit):
        assert SECRET not in html

    # Modified with the password left empty: the stored one stays.
    response = licensed_client.post(f"{EDIT}?name={account.id}",
                                    data=_form(token, password="", login="new.bob",
                                               original=str(account.id)))
    assert response.status_code == 302
    assert _with_store(licensed_client, isp_accounts.remote_fetch_accounts)[0][1].password == SECRET
    assert _remote(licensed_client)[0].login == "new.bob"
    # ... but it never follows the account to another port (or server) unasked.
    response = licensed_client.post(f"{EDIT}?name={account.id}",
                                    data=_form(token, password="", port="1995",
                                               original=str(account.id)))
    assert response.status_code == 400 and "give it again" in response.get_data(as_text=True)
    assert _remote(licensed_client)[0].port != 1995


def test_a_form_without_the_csrf_token_changes_nothing(licensed_client):
    response = licensed_client.post(EDIT, data=_form(""))
    assert response.status_code == 400 and _remote(licensed_client) == []
    assert licensed_client.post(PAGE + "/action", data={"chosen": "1", "operation": "delete"}
                                ).status_code == 400


@pytest.mark.parametrize("field,value,rule", [
    ("host", "evil\r\nRETR 1", "not a host name"),
    ("host", "", "Host: give the mail server"),
    ("port", "0", "must be a number from 1 to 65535"),
    ("port", "110; rm", "must be a number from 1 to 65535"),
    ("protocol", "smtp", "one of pop3, imap"),
    ("tls", "maybe", "one of tls, starttls, none"),
    ("login", "old\r\nDELE 1", "must not hold line breaks"),
    ("password", "pw\r\nQUIT", "must not hold line breaks"),
    ("recipient", "admin", "an administrator has no mailbox"),
    ("recipient", "ghost", "no such user"),
])
def test_hostile_input_is_refused_beside_its_field(licensed_client, field, value, rule):
    token = csrf_token(licensed_client, EDIT)
    response = licensed_client.post(EDIT, data=_form(token, **{field: value}))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    shown = field_rule(html, field) or ""
    assert rule in shown, html
    assert "\r" not in shown and "\n" not in shown
    assert _remote(licensed_client) == []


def test_an_account_is_deleted_from_the_list(licensed_client):
    token = csrf_token(licensed_client, EDIT)
    assert licensed_client.post(EDIT, data=_form(token)).status_code == 302
    number = _remote(licensed_client)[0].id
    response = licensed_client.post(PAGE + "/action", data={"csrf_token": token, "chosen": str(number),
                                                            "operation": "delete"})
    assert response.status_code == 302 and _remote(licensed_client) == []


# ---- the Users page's ISP Login fields (Mirrored) ---------------------------------------
def _isp_login(client, token, **fields):
    return client.post(ISP_LOGIN, data={"csrf_token": token, "name": "bob", "isp_login": "bob.office",
                                        "isp_password": SECRET, "operation": "set", **fields})


def test_the_users_page_has_isp_login_fields_only_while_licensed(client, licensed):
    assert "ISP Login (Mirrored)" not in client.get(USERS).get_data(as_text=True)
    licensed(client.data_dir, mailserver=None)
    html = client.get(USERS).get_data(as_text=True)
    assert "ISP Login (Mirrored)" in html
    row = re.search(r'<tr data-account="bob">.*?</tr>', html, re.S).group(0)
    assert 'name="isp_login"' in row and 'type="password"' in row and f'action="{ISP_LOGIN}"' in row
    admin_row = re.search(r'<tr data-account="admin">.*?</tr>', html, re.S).group(0)
    assert 'name="isp_login"' not in admin_row


def test_an_isp_login_is_set_kept_and_cleared_and_the_password_never_shown(licensed_client):
    token = csrf_token(licensed_client, USERS)
    assert _isp_login(licensed_client, token).status_code == 302
    html = licensed_client.get(USERS).get_data(as_text=True)
    assert 'value="bob.office"' in html and "password stored" in html and SECRET not in html

    # A new login with the password left empty keeps the password.
    assert _isp_login(licensed_client, token, isp_login="bob.new", isp_password="").status_code == 302
    [item] = _with_store(licensed_client, isp_accounts.isp_logins)
    assert item.login == "bob.new"
    store_secret = _with_store(licensed_client, lambda s: s.db.execute(
        "SELECT password FROM mail_isp_logins WHERE name = 'bob'").fetchone()[0])
    assert store_secret == SECRET

    assert _isp_login(licensed_client, token, operation="clear").status_code == 302
    assert _with_store(licensed_client, isp_accounts.isp_logins) == []


def test_isp_login_refuses_a_missing_token_and_hostile_values(licensed_client):
    assert _isp_login(licensed_client, "").status_code == 400
    token = csrf_token(licensed_client, USERS)
    response = _isp_login(licensed_client, token, isp_login="bob\r\nPASS x")
    assert response.status_code == 302
    html = licensed_client.get(USERS).get_data(as_text=True)
    assert "ISP Login: must not hold line breaks" in html
    response = _isp_login(licensed_client, token, name="admin")
    html = licensed_client.get(USERS).get_data(as_text=True)
    assert "an administrator has no mailbox" in html
    assert _with_store(licensed_client, isp_accounts.isp_logins) == []


def test_the_page_is_in_the_email_server_menu_with_its_help(licensed_client):
    html = licensed_client.get(PAGE).get_data(as_text=True)
    assert f'href="{PAGE}"' in html and "Remote POP" in html
    assert 'href="/help/mailserver-remote-pop"' in html
    help_page = licensed_client.get("/help/mailserver-remote-pop")
    assert help_page.status_code == 200
    assert "never shown again" in help_page.get_data(as_text=True)


def test_relay_mode_says_nothing_is_fetched(licensed_client):
    _with_store(licensed_client, lambda store: store.set("email.server_type", "relay", actor="test"))
    assert "Remote POP accounts are not fetched" in licensed_client.get(PAGE).get_data(as_text=True)
