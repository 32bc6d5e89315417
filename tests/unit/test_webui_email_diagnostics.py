"""Support & Diagnostics > Email Diagnostics through Flask's test client: Run
refuses a post without its CSRF token and starts nothing; with it, a job
starts and its JSON fills in as checks finish; what a server says is shown
escaped; a bad public address or an unknown job is said so. The LAN server
here is a real socket on loopback greeting with markup."""

from __future__ import annotations

import re
import socketserver
import threading

import pytest

from firmware.config import Store
from tests.support.net import free_port, wait_until

from test_webui_support import csrf_token, make_app, sign_in

PAGE = "/support/email-diagnostics/"
RUN = "/support/email-diagnostics/run"
HOSTILE = "<script>alert('greeting')</script>"


class _HostileGreeting(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(f"220 {HOSTILE} ESMTP\r\n".encode())
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line.split(b" ")[0].strip().upper()
            if verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 lan.test\r\n")
            elif verb == b"RCPT":
                self.wfile.write(f"550 5.7.1 {HOSTILE} no\r\n".encode())
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def lan_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _HostileGreeting)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(tmp_path, box_serial, lan_server):
    data = tmp_path / "data"
    app = make_app(data)
    store = Store(data)
    # DNS at a port nothing answers: those checks fail quickly on their own budget.
    store.set_many({"email.mail_server_address": lan_server, "dns.nameservers": "127.0.0.1",
                    "dns.port": str(free_port())})
    store.close()
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir = data
    return client


def _jobs(client) -> list:
    directory = client.data_dir / "diagnostics"
    return sorted(directory.glob("*.json")) if directory.exists() else []


def _start(client, **fields) -> str:
    token = csrf_token(client, PAGE)
    response = client.post(RUN, data={"csrf_token": token, **fields})
    assert response.status_code == 303
    return re.search(r"job=([0-9a-f]{16})", response.headers["Location"]).group(1)


def _job(client, job_id) -> dict:
    response = client.get(f"/support/email-diagnostics/jobs/{job_id}.json")
    assert response.status_code == 200
    return response.get_json()


def _wait_done(client, job_id) -> dict:
    return wait_until(lambda: (lambda job: job if job["state"] == "done" else None)(
        _job(client, job_id)), timeout=30, what="the diagnostics job to finish")


def test_the_page_is_in_the_menu_with_its_help(client):
    html = client.get("/support/").get_data(as_text=True)
    assert 'href="/support/email-diagnostics/"' in html
    page = client.get(PAGE).get_data(as_text=True)
    assert "<h1>Support &amp; Diagnostics: Email Diagnostics</h1>" in page
    assert 'id="run-diagnostics"' in page and 'name="csrf_token"' in page
    assert 'href="/help/email-diagnostics"' in page
    helped = client.get("/help/email-diagnostics")
    assert helped.status_code == 200 and "gatebox diagnose" in helped.get_data(as_text=True)


def test_run_without_the_csrf_token_is_refused_and_starts_nothing(client):
    response = client.post(RUN, data={})
    assert response.status_code == 400
    assert "Form refused" in response.get_data(as_text=True)
    assert _jobs(client) == []


def test_run_starts_a_job_whose_results_arrive_and_are_escaped(client):
    job_id = _start(client)
    first = _job(client, job_id)
    assert first["server_type"] == "relay"
    assert {c["name"] for c in first["checks"]} >= {"lan_smtp", "resolver", "certificate"}
    job = _wait_done(client, job_id)
    by_name = {c["name"]: c for c in job["checks"]}
    assert all(c["status"] in ("pass", "warn", "fail") for c in job["checks"])
    lan = by_name["lan_smtp"]
    assert lan["status"] == "fail" and HOSTILE in lan["reason"] and lan["fix"]
    assert by_name["resolver"]["status"] == "fail"   # nothing answers DNS here

    html = client.get(f"{PAGE}?job={job_id}").get_data(as_text=True)
    assert 'id="check-lan_smtp" class="status-fail"' in html
    assert "&lt;script&gt;alert(&#39;greeting&#39;)&lt;/script&gt;" in html
    assert HOSTILE not in html
    assert 'data-state="done"' in html

    audit = Store(client.data_dir)
    try:
        assert any(row["what"] == "run Email Diagnostics" and row["new"] == job_id
                   for row in audit.audit_log())
    finally:
        audit.close()


def test_a_public_address_that_is_not_an_ip_runs_nothing(client):
    token = csrf_token(client, PAGE)
    response = client.post(RUN, data={"csrf_token": token, "public_address": "<b>box</b>"},
                           follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "is not an IP address; nothing was run" in html and "<b>box</b>" not in html
    assert _jobs(client) == []


def test_an_unknown_job_is_not_found(client):
    assert client.get("/support/email-diagnostics/jobs/0123456789abcdef.json").status_code == 404
    assert client.get("/support/email-diagnostics/jobs/..%2Fsettings.json").status_code == 404
    html = client.get(f"{PAGE}?job=0123456789abcdef").get_data(as_text=True)
    assert "no longer kept" in html


def test_signed_out_nothing_is_shown(client):
    job_id = _start(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, PAGE)})
    response = client.get(f"/support/email-diagnostics/jobs/{job_id}.json")
    assert response.status_code in (302, 401, 403)
    _wait_quietly(client, job_id)


def _wait_quietly(client, job_id):
    """Let the job end before its data directory goes: read its file directly."""
    path = client.data_dir / "diagnostics" / f"{job_id}.json"
    wait_until(lambda: '"state": "done"' in path.read_text(), timeout=30,
               what="the job to finish")


def test_the_public_address_given_is_the_one_the_ptr_check_asks_about(client):
    job_id = _start(client, public_address=" 192.0.2.7 ")
    job = _wait_done(client, job_id)
    assert job["public_address"] == "192.0.2.7"
    ptr = next(c for c in job["checks"] if c["name"] == "dns_ptr")
    assert "7.2.0.192.in-addr.arpa" in ptr["reason"]
    html = client.get(f"{PAGE}?job={job_id}").get_data(as_text=True)
    assert 'name="public_address" value="192.0.2.7"' in html
