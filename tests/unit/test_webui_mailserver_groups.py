"""Users & Groups > Groups through Flask's test client: in the menu, CSRF
refusal, each bad value named beside its field, escaping, Add / Modify
(rename) / Delete, and the users left without Email permission."""

import pytest

from firmware import accounts
from firmware.config import Store
from softpaks.mailserver import groups

from test_webui_support import csrf_token, field_rule, make_app, sign_in

GROUPS = "/users-groups/mail/groups"
EDIT = GROUPS + "/edit"


@pytest.fixture
def client(tmp_path, box_serial, licensed):
    app = make_app(tmp_path / "data")
    store = Store(tmp_path / "data")
    for name in ("bob", "carol"):
        accounts.add_user(store, name, "a password 1")
    store.close()
    licensed(tmp_path / "data", mailserver=None)
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir = tmp_path / "data"
    return client


def _groups(client):
    store = Store(client.data_dir)
    try:
        return {g.name: g for g in groups.groups(store)}
    finally:
        store.close()


def _post(client, token, path=EDIT, **fields):
    return client.post(path, data={"csrf_token": token, "operation": "apply", **fields})


def test_page_is_in_the_menu_and_lists_the_default_group(client):
    html = client.get(GROUPS).get_data(as_text=True)
    assert "<h1>Users: Groups</h1>" in html
    assert 'href="/users-groups/mail/groups"' in html and "not in this firmware yet" not in html
    assert 'data-name="default"' in html and "admin, bob, carol" in html
    assert "enforces it" in html and "without-email" not in html


def test_forms_without_a_csrf_token_are_refused(client):
    assert client.post(EDIT, data={"name": "staff", "email": "y", "operation": "apply"}).status_code == 400
    assert client.post(GROUPS + "/action", data={"chosen": "default", "operation": "delete"}
                       ).status_code == 400
    assert list(_groups(client)) == ["default"]


def test_bad_values_are_named_beside_their_field_and_escaped(client):
    token = csrf_token(client, EDIT)
    response = _post(client, token, name="<b>x</b>", members=["bob"])
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert field_rule(html, "name").startswith("Group Name &#39;&lt;b&gt;x&lt;/b&gt;&#39;: must start")
    assert "<b>x</b>" not in html
    response = _post(client, token, name="staff", members=["bob", "<ghost>"])
    html = response.get_data(as_text=True)
    assert field_rule(html, "members") == "Members &#39;&lt;ghost&gt;&#39;: must start with a letter " \
        "or digit and hold only a-z, 0-9, &#39;.&#39;, &#39;_&#39; and &#39;-&#39; (at most 64 characters)"
    response = _post(client, token, name="staff", members=["ghost"])
    assert field_rule(response.get_data(as_text=True), "members").startswith(
        "Members &#39;ghost&#39;: no such user")
    response = _post(client, token, name="default")
    assert "a group of this name already exists" in field_rule(response.get_data(as_text=True), "name")
    assert list(_groups(client)) == ["default"]


def test_add_modify_delete(client):
    token = csrf_token(client, EDIT)
    assert _post(client, token, name="Staff", members=["bob"]).status_code == 302
    assert _groups(client)["staff"] == groups.Group("staff", False, False, ("bob",))
    html = client.get(EDIT + "?name=staff").get_data(as_text=True)
    assert "Modify Group staff" in html and 'value="staff"' in html
    assert '<input checked id="members-1" name="members" type="checkbox" value="bob">' in html
    assert '<input id="members-2" name="members" type="checkbox" value="carol">' in html

    response = _post(client, token, EDIT + "?name=staff", original="staff", name="office",
                     email="y", new_users="y", members=["carol"])
    assert response.status_code == 302
    assert _groups(client)["office"] == groups.Group("office", True, True, ("carol",))
    assert "staff" not in _groups(client)

    response = _post(client, token, EDIT + "?name=default", original="default", name="default",
                     email="y", new_users="y", members=["admin", "carol"])
    assert response.status_code == 302
    html = client.get(GROUPS).get_data(as_text=True)
    assert "Without Email permission:\n  bob." in html

    response = client.post(GROUPS + "/action", data={"csrf_token": token, "chosen": "office",
                                                      "operation": "delete"})
    assert response.status_code == 302 and list(_groups(client)) == ["default"]
    assert client.get(EDIT + "?name=office", follow_redirects=True).get_data(as_text=True).count(
        "group &#39;office&#39;: no such group") == 1


def test_users_without_email_are_not_offered_as_mail_targets(client):
    token = csrf_token(client, EDIT)
    response = _post(client, token, EDIT + "?name=default", original="default", name="default",
                     email="y", new_users="y", members=["admin", "carol"])
    assert response.status_code == 302
    for page in ("/users-groups/mail/auto-responders/edit", "/users-groups/mail/forwarders/edit",
                 "/users-groups/mail/lists/edit"):
        html = client.get(page).get_data(as_text=True)
        assert '<option value="carol">' in html, page
        assert '<option value="bob">' not in html, page
