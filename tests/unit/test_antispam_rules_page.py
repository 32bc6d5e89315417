"""Anti-Spam > Rules through Flask's test client: every built-in rule listed
with its score and description, the strict-MIME warning, Custom rules added
(and refused with the reason beside the field) and removed, escaping, CSRF,
and the help page."""

import re

import pytest
from markupsafe import escape

from firmware.config import Store
from softpaks.antispam.rules import custom
from softpaks.antispam.rules.gtube import GTUBE
from softpaks.antispam.rules.heuristic import HEURISTIC_RULES
from softpaks.antispam.rules.mime_rules import ALL_DEFAULT_RULES

from test_webui_support import csrf_token, field_rule, make_app, sign_in

PAGE = "/anti-spam/rules"


@pytest.fixture
def client(tmp_path, box_serial, licensed):
    app = make_app(tmp_path / "data")
    licensed(tmp_path / "data", antispam=None)
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir = tmp_path / "data"
    return client


def stored(client) -> list:
    store = Store(client.data_dir)
    try:
        return custom.rules(store)
    finally:
        store.close()


def page(client) -> str:
    return " ".join(client.get(PAGE).get_data(as_text=True).split())


def add(client, **fields):
    data = {"csrf_token": csrf_token(client, PAGE), "target": "header", "header": "Subject",
            "kind": "substring", "pattern": "cheap meds", "action": "4", "description": ""}
    data.update(fields)
    return client.post(f"{PAGE}/add", data=data)


def test_every_built_in_rule_is_listed_with_its_score_and_description(client):
    html = page(client)
    for rule in (GTUBE,) + ALL_DEFAULT_RULES + HEURISTIC_RULES:
        row = re.search(rf'<tr data-rule="{rule.name}">(.*?)</tr>', html)
        assert row, rule.name
        assert f"<td>{rule.score:g}</td>" in row.group(1)
        assert str(escape(rule.description)) in row.group(1)


def test_the_page_says_the_strict_mime_rules_are_aggressive(client):
    html = page(client)
    warning = re.search(r'id="strict-mime-warning">(.*?)</section>', html).group(1)
    assert "aggressive" in warning
    assert "significant false positives" in warning
    assert "senders are known to conform to MIME" in warning
    assert 'href="/anti-spam/content-filter"' in warning


def test_a_rule_is_added_listed_and_removed(client):
    response = add(client, pattern="Cheap <Meds>", action="spam", description="pharmacy & co")
    assert response.status_code == 302
    [rule] = stored(client)
    assert (rule.header, rule.pattern, rule.spam, rule.description) == \
        ("Subject", "Cheap <Meds>", True, "pharmacy & co")
    html = page(client)
    assert "Added CUSTOM_RULE_1: header Subject contains" in html
    row = re.search(r'<tr data-rule="CUSTOM_RULE_1">(.*?)</tr>', html).group(1)
    assert "<code>Cheap &lt;Meds&gt;</code>" in row and "pharmacy &amp; co" in row
    assert "<td>spam</td>" in row
    response = client.post(f"{PAGE}/remove", data={"csrf_token": csrf_token(client, PAGE),
                                                   "id": str(rule.id)})
    assert response.status_code == 302 and stored(client) == []
    assert "Removed CUSTOM_RULE_1" in page(client)
    assert "No custom rules yet." in page(client)


@pytest.mark.parametrize("fields, field_id, says", [
    ({"kind": "regex", "pattern": "(a+)+$"}, "pattern", "backtrack exponentially"),
    ({"kind": "regex", "pattern": "[unclosed"}, "pattern", "not a regular expression"),
    ({"header": ""}, "header", "give the header&#39;s name"),
    ({"action": "lots"}, "action", "give a score"),
    ({"action": "500"}, "action", "from -100 to 100"),
    ({"pattern": ""}, "pattern", "give the text to look for"),
])
def test_a_refused_rule_comes_back_with_the_reason_beside_its_field(client, fields, field_id, says):
    response = add(client, **fields)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert says in (field_rule(html, field_id) or "")
    assert stored(client) == []
    # What was typed stays in the form.
    typed = fields.get("pattern")
    if typed:
        assert f'value="{escape(typed)}"' in html


def test_forms_without_a_valid_token_change_nothing(client):
    response = client.post(f"{PAGE}/add", data={"target": "body", "kind": "substring",
                                                "pattern": "x", "action": "1"})
    assert response.status_code == 400 and stored(client) == []
    add(client)
    response = client.post(f"{PAGE}/remove", data={"id": "1"})
    assert response.status_code == 400 and len(stored(client)) == 1


def test_removing_a_rule_that_is_gone_says_so(client):
    response = client.post(f"{PAGE}/remove", data={"csrf_token": csrf_token(client, PAGE),
                                                   "id": "9"}, follow_redirects=True)
    assert "there is no custom rule 9" in response.get_data(as_text=True)


def test_the_help_page(client):
    response = client.get("/help/antispam-rules")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "GTUBE" in html and "strict MIME" in html and "gatebox antispam rules" in html
