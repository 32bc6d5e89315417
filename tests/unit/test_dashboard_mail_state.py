"""The dashboard says what the mail services are doing, and why they fail:
the web admin is where an office finds out its mail stack is down."""

from firmware.system import service_state

from test_webui_support import make_app, sign_in


def test_the_dashboard_shows_a_failed_mail_stack_and_its_error(tmp_path, box_serial):
    data = tmp_path / "data"
    client = make_app(data).test_client()
    assert sign_in(client).status_code == 302
    service_state.record(data, service_state.MAIL, service_state.FAILED,
                         "OSError: [Errno 98] Address already in use", attempts=3)
    html = client.get("/").get_data(as_text=True)
    assert 'id="mail-services"' in html
    assert "Mail services: failed (attempt 3): OSError: [Errno 98] Address already in use" in html

    service_state.record(data, service_state.MAIL, service_state.RUNNING)
    html = client.get("/").get_data(as_text=True)
    assert "Mail services: running" in html and "Address already in use" not in html
