"""The Anti-Virus SoftPak's pages through Flask's test client: the menu, the
offer while unlicensed, CSRF refusal on every form, the settings form with
its explicit failure choice and the memory refusal, the signature status
with the 3-day warning, an upload import, the size limit, and the EICAR
test against a real SMTP server on loopback (aiosmtpd standing in for the
box's port: it answers as the box does, and writes a real quarantine item
and a real queued notice), with the reply shown escaped."""

import datetime
import email
import email.policy
import io
import re

import pytest
from aiosmtpd.controller import Controller

from firmware.config import Store
from firmware.mail.quarantine import Quarantine
from firmware.mail.queue import Spool
from firmware.mail.submit import Submission, submit
from firmware.system import service_state
from softpaks.antivirus import eicar, memory, paths, status
from softpaks.antivirus.web import menu_pages, signatures_page

from test_webui_support import csrf_token, field_rule, make_app, sign_in
from tests.support.net import free_port

PAGES = ["/anti-virus/settings", "/anti-virus/signatures", "/anti-virus/eicar-test"]
HDB_LINE = b"44d88612fea8a8f36de82e1278abb02f:68:Office.Test.Signature\n"


@pytest.fixture
def client(tmp_path, box_serial):
    app = make_app(tmp_path / "data")
    client = app.test_client()
    assert sign_in(client).status_code == 302
    client.data_dir = tmp_path / "data"
    return client


@pytest.fixture
def licensed_client(client, licensed):
    licensed(client.data_dir, antivirus=None)
    return client


def _with_store(client, work):
    store = Store(client.data_dir)
    try:
        return work(store)
    finally:
        store.close()


def _db_files(client) -> list[str]:
    return [p.name for p in paths.signature_files(paths.db_dir(client.data_dir))]


def _fake_cvd(path, version: int, built: datetime.datetime):
    """A database file with a well-formed header (what the status reads);
    its body is never loaded here."""
    header = (f"ClamAV-VDB:{built:%d %b %Y %H-%M} +0000:{version}:2000:90:"
              f"0123456789abcdef0123456789abcdef:signature:test:{int(built.timestamp())}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode().ljust(512, b" ") + b"body")


def test_menu_pages_name_the_menu_the_softpak_and_the_help():
    pages = menu_pages()
    assert [p["menu"] for p in pages] == ["Anti-Virus > Settings", "Anti-Virus > Signatures",
                                          "Anti-Virus > EICAR Test"]
    assert {p["softpak"] for p in pages} == {"antivirus"}
    assert [p["help"] for p in pages] == ["antivirus-settings", "antivirus-signatures",
                                          "antivirus-eicar"]


@pytest.mark.parametrize("path", PAGES)
def test_unlicensed_pages_offer_the_softpak(client, path):
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'class="softpak-offer"' in html and "Anti-Virus SoftPak" in html
    assert 'href="/system/licenses"' in html and "Activate a license" in html
    assert "<h1>Anti-Virus: " in html
    assert 'name="antivirus__enabled"' not in html   # nothing behind the page runs


def test_an_unlicensed_post_changes_nothing(client):
    token = csrf_token(client, "/system/licenses")
    response = client.post("/anti-virus/settings", data={
        "csrf_token": token, "antivirus__action": "quarantine", "apply": ""})
    assert response.status_code == 403 and "softpak-offer" in response.get_data(as_text=True)
    assert _with_store(client, lambda s: s.get("antivirus.action")) == "reject"


def test_the_menu_and_help_pages(licensed_client):
    html = licensed_client.get("/").get_data(as_text=True)
    for path in PAGES:
        assert f'href="{path}"' in html
    assert re.search(r'<li class="menu-top"><span>Anti-Virus</span>', html)
    for name in ("settings", "signatures", "eicar"):
        help_page = licensed_client.get(f"/help/antivirus-{name}")
        assert help_page.status_code == 200
        assert "<h1>Help: Anti-Virus: " in help_page.get_data(as_text=True)
    assert "1.2 GB" in licensed_client.get("/help/antivirus-settings").get_data(as_text=True)
    assert 'href="/help/antivirus-signatures"' in licensed_client.get(
        "/anti-virus/signatures").get_data(as_text=True)


def test_settings_show_state_memory_and_an_explicit_failure_choice(licensed_client):
    client = licensed_client
    html = client.get("/anti-virus/settings").get_data(as_text=True)
    assert 'data-state="no signatures"' in html
    total = memory.megabytes(memory.total_memory())
    assert re.search(rf'data-figure="total"><th scope="row">[^<]*</th><td>{re.escape(total)}<',
                     html)
    assert 'data-figure="needed"' in html and "ConcurrentDatabaseReload no" in html
    assert 'type="radio" name="antivirus__on_failure" id="antivirus__on_failure-tempfail" ' \
           'value="tempfail" checked' in html
    assert 'id="antivirus__on_failure-accept" value="accept">' in html
    token = csrf_token(client, "/anti-virus/settings")
    response = client.post("/anti-virus/settings", data={
        "csrf_token": token, "antivirus__action": "quarantine", "antivirus__on_failure": "accept",
        "antivirus__max_scan_mb": "25", "antivirus__scan_entire_message": "y", "apply": ""})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert _with_store(client, lambda s: (s.get("antivirus.action"), s.get("antivirus.on_failure"))) \
        == ("quarantine", "accept")
    html = client.get("/anti-virus/settings").get_data(as_text=True)
    assert "Saved: " in html and 'value="accept" checked' in html


def test_a_refused_value_keeps_what_was_typed(licensed_client):
    client = licensed_client
    token = csrf_token(client, "/anti-virus/settings")
    response = client.post("/anti-virus/settings", data={
        "csrf_token": token, "antivirus__action": "reject", "antivirus__on_failure": "tempfail",
        "antivirus__max_scan_mb": "<b>500</b>", "apply": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert field_rule(html, "antivirus__max_scan_mb")
    assert 'value="&lt;b&gt;500&lt;/b&gt;"' in html and "<b>500</b>" not in html
    assert _with_store(client, lambda s: s.get("antivirus.max_scan_mb")) == 25


def test_turning_scanning_on_is_refused_without_the_memory(licensed_client):
    client = licensed_client
    # A sparse database file: on disk it takes nothing, but its size asks for
    # more memory than this machine has.
    big = paths.db_dir(client.data_dir) / "main.cvd"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as handle:
        handle.truncate(memory.total_memory())
    token = csrf_token(client, "/anti-virus/settings")
    response = client.post("/anti-virus/settings", data={
        "csrf_token": token, "antivirus__enabled": "y", "antivirus__action": "reject",
        "antivirus__on_failure": "tempfail", "antivirus__max_scan_mb": "25", "apply": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Not enough memory to scan for viruses" in field_rule(html, "antivirus__enabled")
    assert 'data-state="refused for memory"' in html
    assert _with_store(client, lambda s: s.get("antivirus.enabled")) is False
    big.unlink()
    response = client.post("/anti-virus/settings", data={
        "csrf_token": token, "antivirus__enabled": "y", "antivirus__action": "reject",
        "antivirus__on_failure": "tempfail", "antivirus__max_scan_mb": "25", "apply": ""})
    assert response.status_code == 302
    assert _with_store(client, lambda s: s.get("antivirus.enabled")) is True


@pytest.mark.parametrize("path,data", [
    ("/anti-virus/settings", {"antivirus__action": "quarantine", "apply": ""}),
    ("/anti-virus/signatures", {"antivirus__update_source": "offline", "apply": ""}),
    ("/anti-virus/signatures/update", {}),
    ("/anti-virus/eicar-test/send", {"address": "postmaster@example.com"}),
])
def test_forms_without_a_csrf_token_are_refused(licensed_client, path, data):
    response = licensed_client.post(path, data=data)
    assert response.status_code in (400, 302)
    assert _with_store(licensed_client, lambda s: (s.get("antivirus.action"),
                                                    s.get("antivirus.update_source"))) == \
        ("reject", "online")
    assert not (paths.state_dir(licensed_client.data_dir) / "updates.json").exists()
    assert _with_store(licensed_client, lambda s: [r["what"] for r in s.audit_log()
                                                   if "EICAR" in r["what"]]) == []


def test_an_upload_without_a_csrf_token_is_refused_and_leaves_nothing(licensed_client):
    client = licensed_client
    response = client.post("/anti-virus/signatures/import", content_type="multipart/form-data",
                           data={"files": (io.BytesIO(HDB_LINE), "office.hdb")})
    assert response.status_code == 400
    assert _db_files(client) == []
    assert list(signatures_page.upload_root(client.data_dir).iterdir()) == []


def test_an_uploaded_signature_file_is_imported_and_shown(licensed_client):
    client = licensed_client
    html = client.get("/anti-virus/signatures").get_data(as_text=True)
    assert 'id="no-signatures"' in html and 'name="antivirus__update_source"' in html
    token = csrf_token(client, "/anti-virus/signatures")
    response = client.post("/anti-virus/signatures/import", content_type="multipart/form-data",
                           data={"csrf_token": token,
                                 "files": (io.BytesIO(HDB_LINE), "office.hdb")})
    assert response.status_code == 302
    html = client.get("/anti-virus/signatures").get_data(as_text=True)
    assert "Imported: office.hdb: 1 local signature(s)." in html
    assert 'data-file="office.hdb"' in html
    assert _db_files(client) == ["office.hdb"]
    assert list(signatures_page.upload_root(client.data_dir).iterdir()) == []
    # A file that is no signature file imports nothing.
    response = client.post("/anti-virus/signatures/import", content_type="multipart/form-data",
                           data={"csrf_token": token,
                                 "files": (io.BytesIO(b"MZ<script>"), "<b>tool</b>.exe")})
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "not a signature file" in html and "<b>tool" not in html
    bad = b"this is not a signature\n"
    response = client.post("/anti-virus/signatures/import", content_type="multipart/form-data",
                           data={"csrf_token": token, "files": (io.BytesIO(bad), "bad.ndb")})
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Nothing was imported: bad.ndb: line 1 is not a .ndb signature" in html
    assert _db_files(client) == ["office.hdb"]


def test_an_upload_over_the_limit_is_refused(licensed_client, monkeypatch):
    client = licensed_client
    monkeypatch.setattr(signatures_page, "MAX_UPLOAD", 4096)
    token = csrf_token(client, "/anti-virus/signatures")
    response = client.post("/anti-virus/signatures/import", content_type="multipart/form-data",
                           data={"csrf_token": token,
                                 "files": (io.BytesIO(HDB_LINE * 200), "office.hdb")})
    assert response.status_code == 413
    assert _db_files(client) == []


def test_old_signatures_are_warned_about_on_the_page(licensed_client):
    client = licensed_client
    built = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=5)
    _fake_cvd(paths.db_dir(client.data_dir) / "daily.cvd", 27123, built)
    html = client.get("/anti-virus/signatures").get_data(as_text=True)
    assert 'id="signature-version">27123<' in html
    assert 'id="stale-warning"' in html and "5 days old" in html
    _fake_cvd(paths.db_dir(client.data_dir) / "daily.cvd", 27124,
              datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=5))
    html = client.get("/anti-virus/signatures").get_data(as_text=True)
    assert 'id="signature-version">27124<' in html and 'id="stale-warning"' not in html


def test_update_now_in_offline_mode_says_why_nothing_is_fetched(licensed_client):
    client = licensed_client
    _with_store(client, lambda s: s.set("antivirus.update_source", "offline", actor="test"))
    token = csrf_token(client, "/anti-virus/signatures")
    response = client.post("/anti-virus/signatures/update", data={"csrf_token": token})
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Not updated: Signature Updates is set to Offline" in html


def test_stale_and_dashboard_notes():
    now = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.timezone.utc)
    assert status.signatures_stale(now - datetime.timedelta(days=3, minutes=1), now)
    assert not status.signatures_stale(now - datetime.timedelta(days=2, hours=23), now)
    assert not status.signatures_stale(None, now)


def test_the_dashboard_warns_while_scanning_is_on_and_clamd_is_down(licensed_client):
    client = licensed_client
    assert _with_store(client, status.dashboard_notes) == []
    _with_store(client, lambda s: s.set("antivirus.enabled", "on", actor="test"))
    notes = _with_store(client, status.dashboard_notes)
    assert len(notes) == 1 and "clamd is not scanning (no signatures)" in notes[0]
    (paths.db_dir(client.data_dir)).mkdir(parents=True)
    (paths.db_dir(client.data_dir) / "office.hdb").write_bytes(HDB_LINE)
    notes = _with_store(client, status.dashboard_notes)
    assert len(notes) == 1 and "(not running)" in notes[0] and "451" in notes[0]


class _Box:
    """The box's SMTP port as the EICAR test sees it: a real SMTP server on
    loopback answering DATA the way the box's scanner does."""

    def __init__(self, data_dir, answer):
        self.data_dir, self.answer, self.received = data_dir, answer, []

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope.content)
        return self.answer(self, envelope)


@pytest.fixture
def smtp_box(licensed_client):
    controllers = []

    def start(answer):
        handler = _Box(licensed_client.data_dir, answer)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        service_state.record(licensed_client.data_dir, service_state.MAIL, service_state.RUNNING,
                             listening={"bind": "127.0.0.1", "smtp": port})
        return handler
    yield start
    for controller in controllers:
        controller.stop()


def test_eicar_rejected_reply_is_shown_escaped(licensed_client, smtp_box):
    client = licensed_client
    box = smtp_box(lambda handler, envelope:
                   "554 5.7.1 Message rejected: virus found (<script>Eicar</script>)")
    html = client.get("/anti-virus/eicar-test").get_data(as_text=True)
    assert 'value="postmaster@example.com"' in html
    assert re.search(r"Sent to 127\.0\.0\.1 port \d+", html)
    token = csrf_token(client, "/anti-virus/eicar-test")
    response = client.post("/anti-virus/eicar-test/send",
                           data={"csrf_token": token, "address": "postmaster@example.com"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-where="rejected"' in html
    assert ("at DATA: <code id=\"eicar-reply\">554 5.7.1 Message rejected: virus found "
            "(&lt;script&gt;Eicar&lt;/script&gt;)</code>") in html
    assert "<script>Eicar" not in html
    assert 'id="no-notices"' in html
    [received] = box.received
    [attachment] = email.message_from_bytes(received, policy=email.policy.default).iter_attachments()
    assert attachment.get_filename() == "eicar.com"
    assert attachment.get_content() == eicar.eicar_bytes()


def test_eicar_quarantined_shows_the_id_and_the_notices(licensed_client, smtp_box):
    client = licensed_client

    def quarantine(handler, envelope):
        store = Store(handler.data_dir)
        try:
            settings = store.snapshot()
            qid = Quarantine(handler.data_dir).put(
                Submission(sender=envelope.mail_from, recipients=list(envelope.rcpt_tos),
                           message=envelope.content, origin="smtpd"),
                "virus", "virus found (Eicar-Test-Signature)", settings)
            spool = Spool(handler.data_dir / "queue")
            spool.create()
            submit(spool, Submission(sender="", recipients=list(envelope.rcpt_tos),
                                     message=b"Subject: Virus found in a message to you\r\n\r\n"
                                             b"stopped\r\n", origin="notice"),
                   lambda qid: None, settings)
        finally:
            store.close()
        return f"250 2.0.0 Ok: queued as {qid}"

    smtp_box(quarantine)
    token = csrf_token(client, "/anti-virus/eicar-test")
    html = client.post("/anti-virus/eicar-test/send",
                       data={"csrf_token": token, "address": "bob@example.com"}
                       ).get_data(as_text=True)
    assert 'data-where="quarantined"' in html
    [item] = Quarantine(client.data_dir).items()
    assert f'id="eicar-quarantine-id">{item.id}<' in html
    assert "virus found (Eicar-Test-Signature)" in html
    row = re.search(r'<tr data-notice="[0-9A-F]+">.*?</tr>', html, re.S).group(0)
    assert "bob@example.com" in row and "Virus found in a message to you" in row


def test_eicar_with_nothing_listening_says_so(licensed_client):
    client = licensed_client
    port = free_port()
    service_state.record(client.data_dir, service_state.MAIL, service_state.RUNNING,
                         listening={"bind": "0.0.0.0", "smtp": port})
    assert eicar.smtp_address(client.data_dir) == ("127.0.0.1", port)
    token = csrf_token(client, "/anti-virus/eicar-test")
    html = client.post("/anti-virus/eicar-test/send",
                       data={"csrf_token": token, "address": "bob@example.com"}
                       ).get_data(as_text=True)
    assert 'data-where="unreachable"' in html and f"port {port}" in html


def test_eicar_refuses_a_bad_address(licensed_client):
    client = licensed_client
    token = csrf_token(client, "/anti-virus/eicar-test")
    response = client.post("/anti-virus/eicar-test/send",
                           data={"csrf_token": token, "address": "<x>\r\nRCPT TO:<y>"})
    assert response.status_code == 400
    assert field_rule(response.get_data(as_text=True), "address")


def test_the_eicar_string_is_built_at_run_time():
    data = eicar.eicar_bytes()
    assert len(data) == 68 and data.startswith(b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD")
    source = open(eicar.__file__, "rb").read()
    assert data not in source
