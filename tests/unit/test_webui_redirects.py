"""`next` (after sign-in) and `back` (after a queue action) lead only to a
path on this box; everything else falls back. One table, checked against
the function and through the pages that redirect."""

from urllib.parse import quote

import pytest

from webui.safe_redirect import is_local_path

from test_webui_support import PASSWORD, csrf_token, make_app, sign_in

LOCAL = [
    "/",
    "/system/audit",
    "/email-server/queue?sort=arrival&order=desc&view=deferred",
    "/users-groups/mail/mailboxes/bob?sort=from",
]

FOREIGN = [
    None,
    "",
    "//evil.example/x",                 # protocol-relative: another host
    "///evil.example/x",
    "/\t/evil.example/x",               # Werkzeug drops the tab: //evil.example/x
    "/\n/evil.example/x",
    "/\r/evil.example/x",
    "/\x00/evil.example/x",
    "/\x7f/evil.example/x",
    "/ /evil.example/x",
    "https://evil.example/",            # a scheme
    "javascript:alert(1)",
    "http:/evil.example",
    "evil.example/x",                   # a host, not a path
    "/\\evil.example/x",                # browsers read \ as /
    "\\\\evil.example/x",
    "/%2f%2fevil.example/x",            # encoded slashes
    "/%2F/evil.example/x",
    "/%5cevil.example/x",
    "/%5C%5Cevil.example/x",
    "/%252f%252fevil.example/x",        # encoded twice
    "/caf\u00e9",                       # beyond ASCII
    "/\u2215\u2215evil.example",        # look-alike slashes
]


@pytest.mark.parametrize("target", LOCAL)
def test_a_path_on_this_box_is_kept(target):
    assert is_local_path(target)


@pytest.mark.parametrize("target", FOREIGN)
def test_anything_else_is_refused(target):
    assert not is_local_path(target)


@pytest.fixture
def app(tmp_path, box_serial):
    return make_app(tmp_path / "data")


@pytest.mark.parametrize("target", [t for t in FOREIGN if t])
def test_sign_in_with_a_crafted_next_lands_on_the_dashboard(app, target):
    client = app.test_client()
    token = csrf_token(client, "/login")
    response = client.post("/login?next=" + quote(target, safe=""),
                           data={"csrf_token": token, "name": "admin", "password": PASSWORD})
    assert response.status_code == 302
    assert response.location == "/"


@pytest.mark.parametrize("target", LOCAL)
def test_sign_in_follows_a_local_next(app, target):
    client = app.test_client()
    token = csrf_token(client, "/login")
    response = client.post("/login?next=" + quote(target, safe=""),
                           data={"csrf_token": token, "name": "admin", "password": PASSWORD})
    assert response.location == target


def test_the_page_asked_for_before_sign_in_is_where_sign_in_leads(app):
    client = app.test_client()
    asked = client.get("/system/audit")
    assert asked.status_code == 302 and "/login?next=" in asked.location
    token = csrf_token(client, asked.location)
    response = client.post(asked.location, data={"csrf_token": token, "name": "admin",
                                                 "password": PASSWORD})
    assert response.location.startswith("/system/audit")


@pytest.mark.parametrize("target", [t for t in FOREIGN if t] + LOCAL)
def test_queue_action_goes_back_only_to_a_local_page(app, target):
    client = app.test_client()
    assert sign_in(client).status_code == 302
    token = csrf_token(client, "/email-server/queue")
    # No message chosen: the page says so and goes back.
    response = client.post("/email-server/queue/action",
                           data={"csrf_token": token, "operation": "hold", "back": target})
    assert response.status_code == 302
    assert response.location == (target if target in LOCAL else "/email-server/queue")
