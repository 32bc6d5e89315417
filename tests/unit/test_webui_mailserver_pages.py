"""The Mail Server SoftPak's Users & Groups pages through Flask's test client:
the fallback while the SoftPak is not licensed (decided per request), CSRF
refusal, field rules, the audit log, the Relay-mode note and Address
Verification."""

import re

import pytest

from firmware import accounts
from firmware.config import Store
from firmware.licensing import remove
from softpaks.mailserver import directory, groups

from test_webui_support import csrf_token, field_rule, make_app, sign_in

ALIASES = "/users-groups/mail/aliases"
ALIAS_EDIT = ALIASES + "/edit"
PAGES = ["/users-groups/mail/mailboxes", ALIASES, "/users-groups/mail/auto-responders",
         "/users-groups/mail/lists", "/users-groups/mail/forwarders"]


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
    return client


def _store(client):
    store = Store(client.data_dir)
    return store


def _aliases(client):
    store = _store(client)
    try:
        return directory.aliases(store)
    finally:
        store.close()


def _add_alias(client, token, **fields):
    data = {"csrf_token": token, "name": "sales", "domain": "example.com", "target": "bob",
            "operation": "apply", **fields}
    return client.post(ALIAS_EDIT, data=data)


@pytest.mark.parametrize("path", PAGES)
def test_unlicensed_pages_offer_the_softpak(client, path):
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'class="softpak-offer"' in html and "not licensed" in html
    assert 'href="/system/licenses"' in html and "Activate a license" in html
    assert "<h1>Users: " in html


def test_license_is_checked_on_every_request(client, licensed):
    token = csrf_token(client, "/system/licenses")
    response = _add_alias(client, token)
    assert response.status_code == 403 and "softpak-offer" in response.get_data(as_text=True)
    assert _aliases(client) == {}

    lic = licensed(client.data_dir, mailserver=None).license   # the same app, not restarted
    html = client.get(ALIASES).get_data(as_text=True)
    assert "softpak-offer" not in html and ">Modify</button>" in html
    assert _add_alias(client, token).status_code == 302
    assert _aliases(client) == {"sales": "bob"}

    store = _store(client)
    remove(store, lic.id)
    store.close()
    assert "softpak-offer" in client.get(ALIASES).get_data(as_text=True)
    assert _aliases(client) == {"sales": "bob"}   # kept through the lapse


@pytest.mark.parametrize("path,data", [
    (ALIAS_EDIT, {"name": "sales", "domain": "example.com", "target": "bob", "operation": "apply"}),
    (ALIASES + "/action", {"chosen": "sales", "operation": "delete"}),
    ("/users-groups/mail/forwarders/edit", {"user": "bob", "target_user": "__other__",
                                            "address": "bob@isp.net", "operation": "apply"}),
    ("/users-groups/mail/mailboxes/bob/purge", {"confirm": ""}),
])
def test_forms_without_a_csrf_token_are_refused(licensed_client, path, data):
    store = _store(licensed_client)
    directory.add_alias(store, "sales", "bob")
    store.close()
    response = licensed_client.post(path, data=data)
    assert response.status_code == 400
    assert "Form refused" in response.get_data(as_text=True)
    assert _aliases(licensed_client) == {"sales": "bob"}
    store = _store(licensed_client)
    assert directory.forwarders(store) == []
    store.close()


def test_bad_values_show_the_rule_beside_the_field(licensed_client):
    token = csrf_token(licensed_client, ALIAS_EDIT)
    response = _add_alias(licensed_client, token, name="no spaces", target="jsmith@")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert field_rule(html, "name").startswith("Email Addressed To &#39;no spaces&#39;: must start")
    assert "Should Be Delivered To" in field_rule(html, "target")
    assert 'value="jsmith@"' in html
    response = _add_alias(licensed_client, token, name="bob")
    assert "already used by a user" in field_rule(response.get_data(as_text=True), "name")
    assert _aliases(licensed_client) == {}


def test_modify_renames_in_one_step_and_is_audited(licensed_client):
    token = csrf_token(licensed_client, ALIAS_EDIT)
    assert _add_alias(licensed_client, token).status_code == 302
    html = licensed_client.get(ALIAS_EDIT + "?name=sales").get_data(as_text=True)
    assert 'value="sales"' in html and "Modify Alias sales" in html
    response = licensed_client.post(ALIAS_EDIT + "?name=sales", data={
        "csrf_token": token, "original": "sales", "name": "orders", "domain": "example.com",
        "target": "jsmith@isp.net", "operation": "apply"})
    assert response.status_code == 302
    assert _aliases(licensed_client) == {"orders": "jsmith@isp.net"}
    store = _store(licensed_client)
    whats = [(row["actor"], row["what"]) for row in store.audit_log()]
    store.close()
    assert ("admin (web)", "rename sales to alias orders -> jsmith@isp.net") in whats
    assert ("admin (web)", "add alias sales -> bob") in whats


def test_relay_mode_note(licensed_client):
    for path in PAGES[1:]:
        assert "In Relay mode aliases, distribution lists, forwarders" in \
            licensed_client.get(path).get_data(as_text=True), path
    store = _store(licensed_client)
    store.set("email.server_type", "standalone")
    store.close()
    assert "relay-note" not in licensed_client.get(ALIASES).get_data(as_text=True)


def test_address_verification_says_what_needs_the_softpak(client, licensed):
    path = "/email-server/address-verification"
    html = client.get(path).get_data(as_text=True)
    assert 'id="mailserver__unaddressable"' in html
    assert 'data-softpak="mailserver"' in html and "Send unaddressable mail" in html
    licensed(client.data_dir, mailserver=None)
    store = _store(client)
    # Unaddressable mail is a Stand-Alone matter; the User drop-down offers
    # the users with Email permission only.
    store.set("email.server_type", "standalone")
    accounts.add_user(store, "carol", "carol password 1")
    groups.save_group(store, "staff", email=True, members=["bob"])
    store.close()
    html = client.get(path).get_data(as_text=True)
    assert 'data-softpak="mailserver"' not in html
    offered = re.findall(r'<option value="([^"]*)">', html.split('id="mailserver__unaddressable_user"')[1].split("</select>")[0])
    # Administrators (admin, signed in here) are not mail accounts and are never offered.
    assert offered == ["bob", "carol"], offered
    response = client.post(path, data={"csrf_token": csrf_token(client, path),
                                       "mailserver__unaddressable": "user",
                                       "mailserver__unaddressable_user": "bob"})
    assert response.status_code == 302
    store = _store(client)
    assert (store.get("mailserver.unaddressable"), store.get("mailserver.unaddressable_user")) == \
        ("user", "bob")
    store.close()
