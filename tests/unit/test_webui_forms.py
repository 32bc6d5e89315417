"""Settings pages generated from the one declaration; validation, secrets,
visibility by Server Type, CSRF."""

import re

import pytest

from firmware.config import Store, declarations, schema
from webui.settings_form import field_name

from test_webui_support import csrf_token, field_rule, make_app, sign_in

PAGES = {
    "/email-server/settings": schema.SETTINGS_MENU,
    "/email-server/settings/advanced": schema.ADVANCED_MENU,
    "/email-server/scheduling": schema.SCHEDULING_MENU,
    "/email-server/queue/settings": schema.QUEUE_MENU,
    "/system/network": schema.SYSTEM_MENU,
}


@pytest.fixture
def client(tmp_path, box_serial):
    app = make_app(tmp_path / "data")
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir = tmp_path / "data"
    return client


def _stored(client, key):
    store = Store(client.data_dir)
    try:
        return store.get(key)
    finally:
        store.close()


@pytest.mark.parametrize("path,menu", PAGES.items())
def test_every_declared_setting_of_the_menu_has_a_field(client, path, menu):
    html = client.get(path).get_data(as_text=True)
    expected = [s for s in declarations().values() if s.menu == menu]
    assert expected
    for setting in expected:
        assert f'id="{field_name(setting.key)}"' in html, setting.key
    assert ">Apply</button>" in html


def test_page_title_reads_like_the_manual(client):
    html = client.get("/email-server/settings/advanced").get_data(as_text=True)
    assert "<h1>Email Server: Settings: Advanced</h1>" in html
    assert 'href="/help/email-advanced"' in html
    assert ">Apply</button>" in html and ">Cancel</a>" in html


def _post_advanced(client, **fields):
    """Apply on the Advanced page: its manual defaults, with `fields` changed."""
    path = "/email-server/settings/advanced"
    data = {"csrf_token": csrf_token(client, path), "email__max_message_size_mb": "10",
            "email__max_connections_per_host": "5", "email__timeout_connect_min": "5",
            "email__timeout_command_min": "5", "email__timeout_datablock_min": "5",
            "email__timeout_termination_min": "10"}
    return client.post(path, data={**data, **fields})


def test_bad_value_names_the_rule_and_keeps_the_rest(client):
    response = _post_advanced(client, email__max_message_size_mb="-3",
                              email__max_connections_per_host="9", email__timeout_connect_min="7")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert field_rule(html, "email__max_message_size_mb") == \
        "must be a whole number from 1 to 2048 or &#39;unlimited&#39;"
    assert 'value="9"' in html and 'value="-3"' in html
    assert _stored(client, "email.max_connections_per_host") == 5


def test_apply_saves_and_audits_with_the_admin_name(client):
    path = "/email-server/settings/advanced"
    token = csrf_token(client, path)
    response = client.post(path, data={
        "csrf_token": token, "email__max_message_size_mb": "unlimited",
        "email__max_connections_per_host": "5", "email__timeout_connect_min": "5",
        "email__timeout_command_min": "5", "email__timeout_datablock_min": "5",
        "email__timeout_termination_min": "10", "email__allow_client_auth": "y"})
    assert response.status_code == 302
    assert _stored(client, "email.max_message_size_mb") == "unlimited"
    store = Store(client.data_dir)
    entry = next(r for r in store.audit_log() if r["what"] == "set email.max_message_size_mb")
    store.close()
    assert (entry["actor"], entry["old"], entry["new"]) == ("admin (web)", "10", "unlimited")


def test_secret_is_never_shown_and_empty_keeps_it(client):
    path = "/email-server/settings"
    store = Store(client.data_dir)
    store.set("email.relay_server_password", "s3cret-relay", actor="test")
    store.close()
    html = client.get(path).get_data(as_text=True)
    assert "s3cret-relay" not in html
    data = {"csrf_token": csrf_token(client, path), "email__server_enabled": "y",
            "email__server_type": "relay", "email__domain": "example.com",
            "email__trusted_networks": "127.0.0.0/8", "email__relay_server_password": ""}
    assert client.post(path, data=data).status_code == 302
    assert _stored(client, "email.relay_server_password") == "s3cret-relay"


def _field_row(html: str, field_id: str) -> str:
    return re.search(rf'<div class="field[^"]*"[^>]*>\s*(?:<[^>]*>\s*)*?<label for="{field_id}"',
                     html).group(0)


def test_relay_only_fields_hidden_in_other_modes(client, licensed):
    html = client.get("/email-server/settings").get_data(as_text=True)
    assert "hidden" not in _field_row(html, "email__mail_server_address")
    assert "hidden" in _field_row(html, "email__isp_server")
    licensed(client.data_dir, mailserver=None)
    store = Store(client.data_dir)
    store.set("email.server_type", "standalone", actor="test")
    store.close()
    html = client.get("/email-server/settings").get_data(as_text=True)
    assert "hidden" in _field_row(html, "email__mail_server_address")
    assert "hidden" in _field_row(html, "email__isp_server")


def test_the_isp_server_types_can_be_chosen_and_show_their_fields(client, licensed):
    licensed(client.data_dir, mailserver=None)
    path = "/email-server/settings"
    html = client.get(path).get_data(as_text=True)
    for value in ("multidrop", "mirrored", "etrn", "mailbag"):
        option = re.search(rf'<option[^>]*value="{value}"[^>]*>', html).group(0)
        assert "disabled" not in option, value
    assert "not in this firmware yet" not in html
    response = client.post(path, data={"csrf_token": csrf_token(client, path),
                                        "email__server_type": "multidrop",
                                        "email__domain": "example.com",
                                        "email__trusted_networks": "127.0.0.0/8",
                                        "email__isp_server": "pop.isp.test:995",
                                        "email__isp_protocol": "pop3", "email__isp_tls": "tls",
                                        "email__isp_tls_verify": "y",
                                        "email__isp_login": "office",
                                        "email__envelope_header": "x-original-to"})
    assert response.status_code == 302, field_rule(response.get_data(as_text=True),
                                                   "email__isp_server")
    assert _stored(client, "email.server_type") == "multidrop"
    assert _stored(client, "email.isp_server") == "pop.isp.test:995"
    assert _stored(client, "email.envelope_header") == "x-original-to"
    advanced = client.get("/email-server/settings/advanced").get_data(as_text=True)
    retrieve = re.search(r'<input[^>]*id="email__max_retrieve_per_session"[^>]*>', advanced).group(0)
    assert "disabled" not in retrieve
    response = _post_advanced(client, email__max_retrieve_per_session="25")
    assert response.status_code == 302
    assert _stored(client, "email.max_retrieve_per_session") == 25


def test_unlicensed_server_types_are_marked_and_refused(client):
    path = "/email-server/settings"
    html = client.get(path).get_data(as_text=True)
    assert "Stand-Alone (needs the Mail Server SoftPak)" in html
    response = client.post(path, data={"csrf_token": csrf_token(client, path),
                                        "email__server_type": "standalone",
                                        "email__domain": "example.com",
                                        "email__trusted_networks": "127.0.0.0/8"})
    assert "needs the Mail Server SoftPak" in field_rule(response.get_data(as_text=True),
                                                         "email__server_type")


def test_post_without_csrf_token_is_refused(client):
    response = client.post("/email-server/settings/advanced",
                           data={"email__max_message_size_mb": "3"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert _stored(client, "email.max_message_size_mb") == 10
    response = client.post("/email-server/queue/purge", data={"csrf_token": "forged"})
    assert response.status_code == 400
