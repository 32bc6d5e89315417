"""System > Firmware through Flask's test client, CSRF on as in production,
with real bundles (`rauc bundle`, test CAs made for this run)."""

import io

from firmware.system.usb import offers
from tests.support.bundles import (bad_bundles, bundles, signing,  # noqa: F401 (fixtures)
                                   update_box)
from webui.system.firmware_pages import RUNTIME_CONFIG

from test_webui_support import csrf_token, make_app, sign_in


def client_for(box):
    app = make_app(box.data)
    app.config[RUNTIME_CONFIG] = box.runtime()
    client = app.test_client()
    sign_in(client)
    return client


def upload_form(client, path, token=None):
    token = token if token is not None else csrf_token(client, "/system/firmware")
    return client.post("/system/firmware/upload", follow_redirects=True,
                       content_type="multipart/form-data",
                       data={"csrf_token": token, "bundle": (io.BytesIO(path.read_bytes()), path.name)})


def uploads(box):
    directory = box.data / "firmware" / "upload"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_page_shows_running_version_slot_and_the_empty_slot(update_box):
    html = client_for(update_box).get("/system/firmware").get_data(as_text=True)
    assert 'id="running-version">1.0.0<' in html
    assert "A (running)" in html and "unknown or empty" in html
    assert 'id="reboot-button"' in html and 'id="rollback-button"' not in html


def test_a_tampered_upload_is_refused_with_its_message_and_not_kept(update_box, bad_bundles):
    client = client_for(update_box)
    response = upload_form(client, bad_bundles["tampered"])
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="running-version">1.0.0<' in html
    assert "Bundle refused: The bundle&#39;s content was changed after it was signed" in html
    assert uploads(update_box) == [] and 'id="install-form"' not in html


def test_a_good_upload_is_checked_kept_and_offered_for_installing(update_box, bundles):
    client = client_for(update_box)
    html = upload_form(client, bundles["newer"]).get_data(as_text=True)
    assert "checked: version 1.1.0 for gatebox-x86_64" in html
    assert 'id="checked-version">1.1.0<' in html and "Install version 1.1.0 into slot B" in html
    assert bundles["newer"].name in uploads(update_box)


def test_the_scripted_upload_streams_the_body_and_answers_json(update_box, bundles):
    client = client_for(update_box)
    token = csrf_token(client, "/system/firmware")
    response = client.post("/system/firmware/upload", data=bundles["aarch64"].read_bytes(),
                           headers={"Content-Type": "application/octet-stream",
                                    "X-CSRFToken": token, "X-Filename": "arm.raucb"})
    assert response.status_code == 400
    assert response.json["message"].startswith("Bundle refused: This bundle is for gatebox-aarch64")
    assert uploads(update_box) == []


def test_uploads_and_buttons_without_the_csrf_token_are_refused(update_box, bundles):
    client = client_for(update_box)
    response = upload_form(client, bundles["newer"], token="forged")
    assert response.status_code == 400 and "Form refused" in response.get_data(as_text=True)
    assert uploads(update_box) == []
    raw = client.post("/system/firmware/upload", data=b"x" * 100,
                      headers={"Content-Type": "application/octet-stream", "X-Filename": "a.raucb"})
    assert raw.status_code == 400
    for action in ("reboot", "rollback", "install"):
        assert client.post(f"/system/firmware/{action}", data={}).status_code == 400
    assert uploads(update_box) == []
    assert not (update_box.data / "requests" / "reboot").exists()


def test_reboot_now_asks_the_root_unit(update_box):
    client = client_for(update_box)
    token = csrf_token(client, "/system/firmware")
    html = client.post("/system/firmware/reboot", data={"csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)
    assert "The box is rebooting" in html
    assert (update_box.data / "requests" / "reboot").is_file()


def test_usb_offers_are_listed_and_applied_only_after_confirmation(update_box, tmp_path, vendor,
                                                                   box_serial):
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "office.lic").write_text(vendor.issue(mailserver=None))
    offers.record(update_box.data, "sdb1", offers.scan(stick, "sdb1"))
    offer = offers.all_offers(update_box.data)[0]
    client = client_for(update_box)
    html = client.get("/system/firmware").get_data(as_text=True)
    assert "office.lic" in html and f"/system/firmware/usb/{offer.id}" in html
    confirm = client.get(f"/system/firmware/usb/{offer.id}").get_data(as_text=True)
    assert "Activate this license key on this box?" in confirm
    assert "No license activated" in client.get("/system/licenses").get_data(as_text=True)
    token = csrf_token(client, f"/system/firmware/usb/{offer.id}")
    done = client.post(f"/system/firmware/usb/{offer.id}", data={"csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)
    assert "from USB activated" in done
    assert "No license activated" not in client.get("/system/licenses").get_data(as_text=True)
