"""Anti-Spam > Content Filter through Flask's test client: every field with
its explanation and the strict-MIME warning, the thresholds, saving the
server, a domain and a user record, the scope chooser refusing what is not
local by name, clearing a record, and CSRF."""

import re

import pytest

from firmware.config import Store
from softpaks.antispam import content_filter as cf
from softpaks.antispam.web import menu_pages

from test_webui_support import csrf_token, field_rule, make_app, sign_in

PAGE = "/anti-spam/content-filter"


@pytest.fixture
def client(tmp_path, box_serial, licensed):
    app = make_app(tmp_path / "data")
    store = Store(tmp_path / "data")
    store.set_many({"email.domain": "example.com"})
    store.close()
    licensed(tmp_path / "data", antispam=None)
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir = tmp_path / "data"
    return client


def with_store(client, work):
    store = Store(client.data_dir)
    try:
        return work(store)
    finally:
        store.close()


def page(client, path=PAGE) -> str:
    """The page's HTML with runs of white space as one space, as a reader sees it."""
    return " ".join(client.get(path).get_data(as_text=True).split())


def form_data(client, path=PAGE, **fields):
    data = {"csrf_token": csrf_token(client, path), "kind": "server", "scope": "",
            "content_filter": "y", "default_filter": "y", "heuristic": "y", "level": "medium",
            "action": "mark", "tag_subject": "y"}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def test_the_page_is_in_the_menu_with_its_help(client):
    assert "Anti-Spam > Content Filter" in [page["menu"] for page in menu_pages()]
    assert f'href="{PAGE}"' in client.get("/").get_data(as_text=True)
    help_page = client.get("/help/antispam-content_filter")
    assert help_page.status_code == 200
    assert "<h1>Help: Anti-Spam: Content Filter" in help_page.get_data(as_text=True)


def test_every_field_is_shown_with_its_explanation(client):
    html = client.get(PAGE).get_data(as_text=True)
    for label in ("Message Filter Active", "Filter Type", "Default", "Custom",
                  "Heuristic filter", "Level of filtering", "Filter Match Action",
                  "Mark message and deliver to recipient", "Quarantine", "Reject",
                  "Append [SPAM] to subject line"):
        assert label in html, label
    assert 'id="strict-mime-warning"' in html and "strict MIME" in html
    assert "550 5.7.1" in html and "X-Spam-Report" in html
    thresholds = re.findall(r'<tr data-level="(\w+)"[^>]*>\s*<td>\w+</td><td>([\d.]+)</td>'
                            r'<td>([\d.]+)</td>', html)
    assert thresholds == [("low", "8", "15"), ("medium", "5", "10"), ("high", "3.5", "7")]
    assert 'data-level="medium" class="current"' in html
    assert "the filter is off, nothing is scored" in html


def test_saving_the_server_record_writes_the_settings(client):
    response = client.post(f"{PAGE}/save", data=form_data(
        client, level="high", action="quarantine", tag_subject=None))
    assert response.status_code == 302
    values = with_store(client, lambda s: [s.get(k) for k in (
        cf.ACTIVE, cf.LEVEL, cf.ACTION, cf.TAG_SUBJECT)])
    assert values == [True, "high", "quarantine", False]
    html = page(client)
    assert "Saved the Content Filter of All Domains." in html
    assert "marked from 3.5, quarantined from 7" in html


def test_a_domain_and_a_user_record(client):
    domain_page = f"{PAGE}?kind=domain&scope=example.com"
    html = page(client, domain_page)
    assert 'id="inherited"' in html and "the one of All Domains" in html
    response = client.post(f"{PAGE}/save", data=form_data(
        client, domain_page, kind="domain", scope="example.com", action="reject"))
    assert response.status_code == 302
    found = with_store(client, lambda s: cf.record(s, "domain", "example.com"))
    assert (found.active, found.action) == (True, "reject")
    html = page(client, domain_page)
    assert 'id="inherited"' not in html and 'id="clear-record"' in html
    listed = client.get(f"{PAGE}?kind=domain").get_data(as_text=True)
    assert 'data-scope="example.com"' in listed
    # A user inherits the domain's record until saving one of its own.
    user_page = f"{PAGE}?kind=user&scope=bob@example.com"
    html = page(client, user_page)
    assert "the one of domain example.com applies" in html
    assert re.search(r'<input checked id="action-\d" name="action" type="radio" value="reject">', html)
    client.post(f"{PAGE}/save", data=form_data(client, user_page, kind="user",
                                               scope="bob@example.com", level="low"))
    bob = with_store(client, lambda s: cf.for_recipient(s, s.snapshot(), "bob@example.com"))
    assert (bob.scope, bob.level, bob.action) == ("user bob@example.com", "low", "mark")
    # Remove record: the domain's applies again.
    token = csrf_token(client, user_page)
    response = client.post(f"{PAGE}/clear", data={"csrf_token": token, "kind": "user",
                                                  "scope": "bob@example.com"})
    assert response.status_code == 302
    bob = with_store(client, lambda s: cf.for_recipient(s, s.snapshot(), "bob@example.com"))
    assert bob.scope == "domain example.com"
    assert "applies to it now" in page(client, user_page)


def test_a_scope_that_is_not_local_is_refused_by_name(client):
    html = client.get(f"{PAGE}?kind=domain&scope=other.test").get_data(as_text=True)
    assert "&#39;other.test&#39; is not a local domain of this box" in field_rule(html, "scope")
    assert 'id="filters"' not in html
    response = client.post(f"{PAGE}/save", data=form_data(client, kind="user",
                                                          scope="eve@other.test"))
    assert response.status_code == 400
    assert "is not a local domain" in field_rule(response.get_data(as_text=True), "scope")
    assert with_store(client, cf.scoped_records) == []


def test_invalid_fields_are_named_and_nothing_is_saved(client):
    response = client.post(f"{PAGE}/save", data=form_data(client, level="extreme"))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was saved" in html
    assert field_rule(html, "level").startswith("Level of filtering: ")
    assert with_store(client, lambda s: s.get(cf.ACTIVE)) is False


def test_markup_in_a_scope_is_escaped(client):
    html = client.get(f"{PAGE}?kind=user&scope=<script>x</script>@example.com").get_data(
        as_text=True)
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize("path", ["/save", "/clear"])
def test_forms_without_a_csrf_token_are_refused(client, path):
    with_store(client, lambda s: cf.save(s, {"level": "high"}, domain="example.com"))
    response = client.post(PAGE + path, data={"kind": "domain", "scope": "example.com",
                                              "level": "low", "action": "reject"})
    assert response.status_code in (400, 302)
    found = with_store(client, lambda s: cf.record(s, "domain", "example.com"))
    assert (found.level, found.action) == ("high", "mark")
