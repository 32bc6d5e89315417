"""The quarantine store (firmware.mail.quarantine), `gatebox quarantine` and
Email Server > Quarantine: held durably, listed, released through submit
into the queue, deleted, expired; hostile content shown as text only."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from firmware.cli import main
from firmware.config import Store
from firmware.mail.quarantine import Quarantine, reason_text
from firmware.mail.queue import NotInQueue, Spool
from firmware.mail.submit import Submission
from tests.unit.test_webui_support import csrf_token, make_app, sign_in

HOSTILE = b"Subject: <script>alert(1)</script>\r\nFrom: x@example.net\r\n\r\n<img src=x onerror=alert(2)>\r\n"


def _hold(data, kind="virus", reason="virus found (Test.Sig)", received=None, recipient="bob@example.com"):
    if not (data / "gatebox.db").exists():
        Store.create(data).close()
        Spool(data / "queue").create()  # as `gatebox init` leaves a box
    store = Store(data)
    try:
        return Quarantine(data).put(Submission(
            sender="eve@example.net", recipients=[recipient], message=HOSTILE, origin="smtpd",
            direction="inbound", client_address="192.0.2.9", received=received or time.time()),
            kind, reason, store.snapshot())
    finally:
        store.close()


def test_a_held_message_is_listed_with_its_kind_and_reason_and_not_queued(tmp_path):
    qid = _hold(tmp_path)
    [item] = Quarantine(tmp_path).items()
    assert (item.id, item.kind, item.reason) == (qid, "virus", "virus found (Test.Sig)")
    assert item.envelope.recipients[0].address == "bob@example.com"
    assert Spool(tmp_path / "queue").ids("incoming") == []
    assert Quarantine(tmp_path).items("spam") == []
    assert Quarantine(tmp_path).load(qid)[1].endswith(HOSTILE)


def test_release_queues_a_marked_copy_for_the_original_recipients_then_drops_the_held_one(tmp_path):
    qid = _hold(tmp_path)
    spool = Spool(tmp_path / "queue")
    announced = []
    store = Store(tmp_path)
    done, errors = Quarantine(tmp_path).release_many([qid, "NOSUCH"], spool, announced.append,
                                                     store, "tester")
    [(old, new)] = done
    assert old == qid and announced == [new] and errors == ["NOSUCH: no such message in the quarantine"]
    envelope, message = spool.load("incoming", new)
    assert [r.address for r in envelope.recipients] == ["bob@example.com"]
    assert envelope.sender == "eve@example.net" and envelope.last_error == ""
    assert message.startswith(f"X-Gatebox-Quarantine: released {qid} by tester".encode())
    assert Quarantine(tmp_path).items() == []
    assert store.audit_log()[0]["what"] == "quarantine release"
    store.close()


def test_expiry_deletes_only_what_outlived_the_setting(tmp_path):
    old = _hold(tmp_path, received=time.time() - 31 * 86400)
    young = _hold(tmp_path, received=time.time() - 29 * 86400)
    assert Quarantine(tmp_path).expire(30) == 1
    assert [item.id for item in Quarantine(tmp_path).items()] == [young]
    with pytest.raises(NotInQueue):
        Quarantine(tmp_path).load(old)


def test_recovery_drops_partial_files_and_an_unreadable_file_does_not_break_the_listing(tmp_path):
    good = _hold(tmp_path)
    quarantine = Quarantine(tmp_path)
    (quarantine.spool.tmp / "PARTIAL").write_bytes(b"GATEBOX-QUEUE 1\n{")
    (quarantine.spool.dir("hold") / "GARBAGE").write_bytes(b"not a queue file")
    assert quarantine.recover() == {"tmp_dropped": 1}
    assert [item.id for item in quarantine.items()] == [good]


def test_hostile_ids_and_kinds_are_refused(tmp_path):
    with pytest.raises(NotInQueue):
        Quarantine(tmp_path).load("../gatebox.db")
    with pytest.raises(ValueError):
        reason_text("ham", "x")


def test_the_cli_lists_shows_releases_and_deletes(tmp_path):
    first, second = _hold(tmp_path), _hold(tmp_path, kind="spam", reason="spam score 12.0")
    runner = CliRunner()
    listed = runner.invoke(main, ["--data", str(tmp_path), "quarantine", "list", "--kind", "spam"])
    assert listed.exit_code == 0 and second in listed.output and first not in listed.output
    released = runner.invoke(main, ["--data", str(tmp_path), "quarantine", "release", first])
    assert released.exit_code == 0 and f"{first}: released as " in released.output
    deleted = runner.invoke(main, ["--data", str(tmp_path), "quarantine", "delete", second, "BAD"])
    assert deleted.exit_code == 1 and f"{second}: deleted" in deleted.output
    assert "BAD: no such message" in deleted.output
    assert Quarantine(tmp_path).items() == []
    assert len(Spool(tmp_path / "queue").ids("incoming")) == 1


@pytest.fixture
def client(tmp_path):
    app = make_app(tmp_path)
    Spool(tmp_path / "queue").create()
    with app.test_client() as client:
        sign_in(client)
        yield client


def test_the_page_lists_escapes_and_shows_the_message_as_text(tmp_path, client):
    qid = _hold(tmp_path)
    html = client.get("/email-server/quarantine").get_data(as_text=True)
    assert qid in html and "virus found (Test.Sig)" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    shown = client.get(f"/email-server/quarantine/message/{qid}")
    assert shown.status_code == 200 and "default-src 'none'" in shown.headers["Content-Security-Policy"]
    assert "<img src=x" not in shown.get_data(as_text=True)
    assert client.get("/email-server/quarantine/message/NOSUCH").status_code == 404


def test_release_from_the_page_needs_the_csrf_token_and_queues_the_message(tmp_path, client):
    qid = _hold(tmp_path)
    refused = client.post("/email-server/quarantine/action", data={"operation": "release", "qid": qid})
    assert refused.status_code == 400 and len(Quarantine(tmp_path).items()) == 1
    token = csrf_token(client, "/email-server/quarantine")
    done = client.post("/email-server/quarantine/action",
                       data={"csrf_token": token, "operation": "release", "qid": qid},
                       follow_redirects=True)
    assert "1 message(s) released" in done.get_data(as_text=True)
    assert Quarantine(tmp_path).items() == [] and len(Spool(tmp_path / "queue").ids("incoming")) == 1


def test_releasing_some_recipients_keeps_the_others_held(tmp_path):
    store = Store.create(tmp_path)
    Spool(tmp_path / "queue").create()
    try:
        qid = Quarantine(tmp_path).put(Submission(
            sender="eve@example.net", recipients=["bob@example.com", "carol@example.com"],
            message=HOSTILE, origin="smtpd", direction="inbound"), "virus", "virus found (T)",
            store.snapshot())
        spool = Spool(tmp_path / "queue")
        new = Quarantine(tmp_path).release_one(qid, spool, lambda q: None, store, "tester",
                                               ["CAROL@example.com"])
        assert [r.address for r in spool.load("incoming", new)[0].recipients] == ["carol@example.com"]
        [kept] = Quarantine(tmp_path).items()
        assert kept.id == qid and kept.recipients == ["bob@example.com"]
        with pytest.raises(NotInQueue):
            Quarantine(tmp_path).release(qid, spool, lambda q: None, store.snapshot(), "t",
                                         ["nobody@example.com"])
    finally:
        store.close()
