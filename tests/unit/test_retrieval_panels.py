"""The retrieval panel (next retrieval, last result, Retrieve now) on the
dashboard and on Email Server > Settings, through Flask's test client with
CSRF on. Retrieve now is answered by the real retrieval service (its thread
started here on the same data directory) sending a real ETRN to a private
Postfix on 127.0.0.2 (tests/support/isp_postfix.py)."""

from __future__ import annotations

import asyncio
import datetime
import re

import pytest

from firmware import accounts
from firmware.config import Store
from softpaks.mailserver.retrieval import AccountResult, isp_accounts, state
from softpaks.mailserver.retrieval.runner import RetrievalRunner
from softpaks.mailserver.web import retrieval as retrieval_page
from tests.support.isp_postfix import IspPostfix
from tests.support.net import free_port, wait_until

from test_webui_support import csrf_token, make_app, sign_in

DASHBOARD = "/"
SETTINGS = "/email-server/settings"
RETRIEVE_NOW = "/users-groups/mail/retrieve-now"
HOSTILE = "<script>alert('isp')</script>"
T_NEXT = datetime.datetime(2031, 5, 6, 7, 30, tzinfo=datetime.timezone.utc).timestamp()


@pytest.fixture
def client(tmp_path, box_serial):
    app = make_app(tmp_path / "data")
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir = tmp_path / "data"
    return client


@pytest.fixture
def licensed_client(client, licensed):
    licensed(client.data_dir, mailserver=None)
    return client


def with_store(client, work):
    store = Store(client.data_dir)
    try:
        return work(store)
    finally:
        store.close()


def configure(client, **values):
    with_store(client, lambda store: store.set_many({"system.timezone": "UTC", **values},
                                                     actor="test"))


def panel(html: str) -> str | None:
    match = re.search(r'<section class="card status-panel" id="panel-retrieval".*?</section>', html,
                      re.DOTALL)
    return match.group(0) if match else None


def panel_lines(html: str) -> list[str]:
    return re.findall(r'<p class="hint">(.*?)</p>', panel(html) or "")


def button_token(client, path: str) -> str:
    """The CSRF token the Retrieve now button of that page carries."""
    return re.search(r'name="csrf_token" value="([^"]+)"', panel(client.get(path).get_data(as_text=True))
                     ).group(1)


def flashes(html: str) -> list[str]:
    return re.findall(r'<p class="flash [a-z]+" role="status">(.*?)</p>', html)


# ---- the panel -------------------------------------------------------------------------

@pytest.mark.parametrize("server_type, title", [("etrn", "Retrieval (ETRN)"),
                                                ("multidrop", "Retrieval (Multi-drop)"),
                                                ("mailbag", "Retrieval (Mail-bagging)")])
@pytest.mark.parametrize("path", [DASHBOARD, SETTINGS])
def test_the_panel_shows_next_retrieval_last_result_and_the_button(licensed_client, path,
                                                                   server_type, title):
    configure(licensed_client, **{"email.server_type": server_type})
    with_store(licensed_client, lambda store: state.set_next_run(store, T_NEXT))
    response = licensed_client.get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    shown = panel(html)
    assert shown is not None, html
    assert f"<h2>{title}</h2>" in shown
    assert panel_lines(html) == ["Next retrieval: 2031-05-06 07:30 UTC", "Last retrieval: none yet"]
    # The button posts to Retrieve now with the CSRF token and comes back here.
    assert f'action="{RETRIEVE_NOW}"' in shown
    assert re.search(r'name="csrf_token" value="[^"]+"', shown)
    assert f'name="back" value="{path}"' in shown
    assert 'id="retrieval-action">Retrieve now</button>' in shown


def test_the_last_result_and_error_are_shown_escaped(licensed_client):
    configure(licensed_client, **{"email.server_type": "etrn"})
    finished = datetime.datetime(2031, 5, 6, 7, 0, tzinfo=datetime.timezone.utc).timestamp()

    def last_run(store):
        result = AccountResult("etrn", ok=False, detail=f"ETRN example.com to isp.test: 459 {HOSTILE}")
        state.record_account(store, result, finished)
        state.finished(store, finished, result.summary, None)
    with_store(licensed_client, last_run)
    for path in (DASHBOARD, SETTINGS):
        html = licensed_client.get(path).get_data(as_text=True)
        assert HOSTILE not in html
        escaped = "&lt;script&gt;alert(&#39;isp&#39;)&lt;/script&gt;"
        assert panel_lines(html)[1:] == [
            "Last retrieval: 2031-05-06 07:00 UTC",
            f"etrn: failed: ETRN example.com to isp.test: 459 {escaped}",
            f"Last error of etrn: ETRN example.com to isp.test: 459 {escaped}"]


def test_the_next_retrieval_follows_the_schedule_before_the_service_has_looked(licensed_client):
    # Every 60 minutes in every window: the next full hour.
    configure(licensed_client, **{"email.server_type": "etrn", "email.business_schedule": "60",
                                  "email.evening_schedule": "60", "email.weekend_schedule": "60"})
    line = panel_lines(licensed_client.get(DASHBOARD).get_data(as_text=True))[0]
    shown = datetime.datetime.strptime(line, "Next retrieval: %Y-%m-%d %H:%M UTC").replace(
        tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert shown.minute == 0 and now < shown <= now + datetime.timedelta(hours=1)


def add_remote_account(store):
    accounts.add_user(store, "bob", "bob password 1")
    isp_accounts.save_remote_account(store, host_name="pop.old-isp.test", login_name="old.bob",
                                     password_text="old secret", recipient="bob", actor="test")


def test_no_panel_where_nothing_is_retrieved(licensed_client):
    configure(licensed_client, **{"email.server_type": "standalone"})
    for path in (DASHBOARD, SETTINGS):
        assert panel(licensed_client.get(path).get_data(as_text=True)) is None


def test_remote_pop_accounts_show_the_panel_where_mailboxes_are_kept(licensed_client):
    configure(licensed_client, **{"email.server_type": "standalone"})
    with_store(licensed_client, add_remote_account)
    html = licensed_client.get(DASHBOARD).get_data(as_text=True)
    assert "<h2>Retrieval (Remote POP)</h2>" in panel(html)
    # In Relay they are not fetched: no panel, no button that would do nothing.
    configure(licensed_client, **{"email.server_type": "relay"})
    for path in (DASHBOARD, SETTINGS):
        assert panel(licensed_client.get(path).get_data(as_text=True)) is None


def test_no_panel_without_the_mail_server_license(client):
    for path in (DASHBOARD, SETTINGS):
        html = client.get(path).get_data(as_text=True)
        assert panel(html) is None


# ---- Retrieve now ----------------------------------------------------------------------

def requested(client):
    return with_store(client, lambda store: state.runner(store).requested)


def test_retrieve_now_without_the_csrf_token_is_refused(licensed_client):
    configure(licensed_client, **{"email.server_type": "etrn", "email.isp_server": "127.0.0.2"})
    response = licensed_client.post(RETRIEVE_NOW, data={"back": SETTINGS})
    assert response.status_code == 400
    response = licensed_client.post(RETRIEVE_NOW, data={"csrf_token": "forged", "back": SETTINGS})
    assert response.status_code == 400
    assert requested(licensed_client) is None


def test_retrieve_now_without_the_license_is_refused(client):
    token = csrf_token(client, SETTINGS)
    assert client.post(RETRIEVE_NOW, data={"csrf_token": token}).status_code == 403
    assert requested(client) is None


def test_retrieve_now_in_a_type_that_retrieves_nothing_says_so_at_once(licensed_client):
    configure(licensed_client, **{"email.server_type": "relay"})
    token = csrf_token(licensed_client, SETTINGS)
    response = licensed_client.post(RETRIEVE_NOW, data={"csrf_token": token, "back": SETTINGS},
                                    follow_redirects=True)
    assert response.request.path == SETTINGS
    assert flashes(response.get_data(as_text=True)) == ["Server type relay retrieves nothing."]
    assert requested(licensed_client) is None


def test_retrieve_now_with_no_service_running_says_it_was_requested(licensed_client, monkeypatch):
    # The wait is cut short: what matters is what the page says when no service answers.
    monkeypatch.setattr(retrieval_page, "WAIT_SECONDS", 0.5)
    configure(licensed_client, **{"email.server_type": "etrn", "email.isp_server": "127.0.0.2"})
    token = button_token(licensed_client, DASHBOARD)
    response = licensed_client.post(RETRIEVE_NOW, data={"csrf_token": token, "back": DASHBOARD},
                                    follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.request.path == DASHBOARD
    assert [f for f in flashes(html) if f.startswith("Retrieve now was requested")]
    assert requested(licensed_client) is not None
    assert [line for line in panel_lines(html) if line.startswith("Retrieve now requested at ")]


def test_retrieve_now_off_the_box_goes_to_the_settings_page(licensed_client, monkeypatch):
    monkeypatch.setattr(retrieval_page, "WAIT_SECONDS", 0.1)
    configure(licensed_client, **{"email.server_type": "etrn", "email.isp_server": "127.0.0.2"})
    token = button_token(licensed_client, DASHBOARD)
    response = licensed_client.post(RETRIEVE_NOW, data={"csrf_token": token,
                                                        "back": "https://evil.test/"})
    assert response.status_code == 302 and response.headers["Location"].endswith(SETTINGS)


@pytest.fixture
def isp():
    # The ISP's Postfix holds mail for example.com; nothing is queued in
    # these tests, so it relays to a closed port on the box's side.
    server = IspPostfix("example.com", "127.0.0.1", free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def service(licensed_client):
    """The retrieval service of `gatebox run`, on the test's data directory,
    its clock far from any scheduled tick: only Retrieve now makes it run."""
    configure(licensed_client, **{"email.business_schedule": "480", "email.evening_schedule": "480",
                                  "email.weekend_schedule": "480"})
    runner = RetrievalRunner(licensed_client.data_dir, clock=lambda: T_NEXT - 3600, poll=0.1)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(runner.start())
    wait_until(lambda: runner.looks >= 1, what="the service to read the schedule")
    yield runner
    loop.run_until_complete(runner.stop())
    loop.close()


@pytest.mark.parametrize("path", [DASHBOARD, SETTINGS])
def test_retrieve_now_is_run_by_the_service_and_the_result_shown(licensed_client, isp, service,
                                                                 path):
    configure(licensed_client, **{"email.server_type": "etrn",
                                  "email.isp_server": f"{isp.host}:{isp.port}"})
    assert service.sessions == 0
    token = button_token(licensed_client, path)
    response = licensed_client.post(RETRIEVE_NOW, data={"csrf_token": token, "back": path},
                                    follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.request.path == path
    assert service.sessions == 1
    [shown] = flashes(html)
    assert shown.startswith(f"Retrieved: etrn: 0 fetched (ETRN example.com to {isp.host}:{isp.port}: 250 ")
    assert "etrn=1" in isp.log()
    lines = panel_lines(html)
    assert lines[0] == "Next retrieval: 2031-05-06 08:00 UTC"
    assert lines[1] == "Last retrieval: 2031-05-06 06:30 UTC"
    assert lines[2].startswith(f"etrn: 0 fetched (ETRN example.com to {isp.host}:{isp.port}: 250 ")
    assert requested(licensed_client) is None
    audit = with_store(licensed_client, lambda store: store.db.execute(
        "SELECT COUNT(*) FROM audit WHERE what = 'retrieve now'").fetchone()[0])
    assert audit == 1
