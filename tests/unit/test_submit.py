"""The one way into the queue: real queue files in a temporary spool."""

import ast
import asyncio
import logging
import os
from pathlib import Path

import pytest

from firmware.mail.headers import unfolded_headers
from firmware.mail.queue import Spool
from firmware.mail.submit import Submission, message_id_domain, submit, submit_async

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"system.hostname": "gw.example.com", "email.domain": "example.com"}


@pytest.fixture
def spool(tmp_path):
    spool = Spool(tmp_path / "queue")
    spool.create()
    return spool


class Announcements:
    """Records each announced id with where its file was at that moment."""

    def __init__(self, spool):
        self.spool = spool
        self.seen = []

    def __call__(self, qid):
        self.seen.append((qid, self.spool.locate(qid), os.listdir(self.spool.tmp)))


def headers_of(message: bytes) -> dict:
    found = {}
    for name, value in unfolded_headers(message):
        found.setdefault(name, []).append(value)
    return found


def test_generated_mail_gets_the_headers_it_lacks_then_is_announced(spool):
    announce = Announcements(spool)
    body = b"Subject: Undelivered Mail\r\nTo: a@example.com\r\n\r\nsorry\r\n"
    qid = submit(spool, Submission("", ["a@example.com"], body, origin="bounce"), announce, SETTINGS)

    assert announce.seen == [(qid, "incoming", [])], "announced only once durable in incoming"
    envelope, stored = spool.load("incoming", qid)
    headers = headers_of(stored)
    assert headers["message-id"] == [envelope.message_id]
    assert envelope.message_id.endswith(f".{qid}@gw.example.com>")
    assert len(headers["date"]) == 1
    assert headers["from"] == ["MAILER-DAEMON@gw.example.com"]
    assert stored.endswith(body) and b"\n\r\n" not in stored[:-len(body)]
    assert (envelope.subject, envelope.header_from, envelope.size) == \
        ("Undelivered Mail", "MAILER-DAEMON@gw.example.com", len(stored))
    assert envelope.is_bounce and envelope.sender == "" and envelope.direction == "outbound"
    assert [r.address for r in envelope.recipients] == ["a@example.com"]


def test_headers_already_there_are_kept_as_they_are(spool):
    body = (b"From: Bob <bob@example.com>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n"
            b"Message-ID: <own@example.com>\nSubject: away\n\nback soon\n")
    qid = submit(spool, Submission("", ["c@far.test"], body, origin="autoreply"), lambda q: None,
                 SETTINGS)
    envelope, stored = spool.load("incoming", qid)
    assert stored == body
    assert (envelope.message_id, envelope.header_from, envelope.is_bounce) == \
        ("<own@example.com>", "Bob <bob@example.com>", False)


def test_a_forward_without_a_from_names_its_sender_in_bare_newlines(spool):
    body = b"Subject: fwd\n\nhello\n"
    qid = submit(spool, Submission("ann@example.com", ["x@far.test"], body, origin="forward"),
                 lambda q: None, SETTINGS)
    _, stored = spool.load("incoming", qid)
    assert headers_of(stored)["from"] == ["ann@example.com"]
    assert b"\r" not in stored


def test_smtpd_mail_is_stored_as_received_under_its_trace(spool, caplog):
    body = b"Subject: caf\xc3\xa9\r\n\r\nbody\r\n"
    announce = Announcements(spool)
    submission = Submission(
        "a@far.test", ["b@example.com"], body, origin="smtpd", direction="inbound",
        client_address="203.0.113.7", client_name="", helo="mx.far.test", auth_user="ann",
        received=1000.0, body_8bit=False,
        trace=lambda qid: f"Received: from mx.far.test by gw id {qid}\r\n".encode())
    with caplog.at_level(logging.INFO):
        qid = asyncio.run(submit_async(spool, submission, announce, SETTINGS))
    envelope, stored = spool.load("incoming", qid)
    assert stored == f"Received: from mx.far.test by gw id {qid}\r\n".encode() + body
    assert "message-id" not in headers_of(stored) and "date" not in headers_of(stored)
    assert (envelope.received, envelope.client_address, envelope.helo, envelope.auth_user,
            envelope.body_8bit, envelope.message_id) == \
        (1000.0, "203.0.113.7", "mx.far.test", "ann", False, "")
    assert announce.seen == [(qid, "incoming", [])]
    smtpd_lines = [r.getMessage() for r in caplog.records if r.name == "gatebox.smtpd"]
    assert smtpd_lines == [
        f"{qid}: client=unknown[203.0.113.7], sasl_username=ann, message-id=<>",
        f"{qid}: from=<a@far.test>, size={len(stored)}, nrcpt=1 (queue active)"]


def test_eight_bit_content_is_judged_from_the_bytes_when_not_told(spool):
    qid = submit(spool, Submission("", ["a@example.com"], b"Subject: x\r\n\r\n\xc3\xa9\r\n",
                                   origin="autoreply"), lambda q: None, SETTINGS)
    assert spool.load("incoming", qid)[0].body_8bit


def test_a_failed_write_is_raised_and_never_announced(tmp_path):
    unmade = Spool(tmp_path / "nowhere")  # no state directories: the write fails
    announced = []
    with pytest.raises(OSError):
        submit(unmade, Submission("", ["a@example.com"], b"Subject: x\r\n\r\n", origin="bounce"),
               announced.append, SETTINGS)
    assert announced == []


def test_submissions_name_a_known_origin_and_a_recipient():
    with pytest.raises(ValueError, match="unknown mail origin"):
        Submission("", ["a@example.com"], b"", origin="carrier-pigeon")
    with pytest.raises(ValueError, match="recipient"):
        Submission("", [], b"", origin="bounce")


def test_message_id_domain_is_fully_qualified():
    assert message_id_domain({"system.hostname": "gatebox", "email.domain": "office.test"}) == \
        "gatebox.office.test"
    assert message_id_domain({"system.hostname": "gatebox", "email.domain": "*"}) == "gatebox"
    assert message_id_domain(SETTINGS) == "gw.example.com"


QUEUE_FILE_MAKERS = ("Envelope", "new_queue_id")
ALLOWED = {"firmware/mail/submit.py", "firmware/mail/queue.py"}


def _queue_file_makers(path: Path) -> list:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in QUEUE_FILE_MAKERS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}(")
    return found


def test_no_module_but_submit_builds_queue_files():
    sources = [p for package in ("firmware", "webui", "softpaks")
               for p in sorted((ROOT / package).rglob("*.py"))]
    assert any(p.name == "local_delivery.py" for p in sources), "the scan reads the SoftPaks too"
    offenders = [hit for path in sources if str(path.relative_to(ROOT)) not in ALLOWED
                 for hit in _queue_file_makers(path)]
    assert offenders == []


def test_the_scan_recognises_a_module_that_builds_queue_files():
    hits = _queue_file_makers(ROOT / "firmware" / "mail" / "submit.py")
    assert {hit.split()[-1] for hit in hits} == {"Envelope(", "new_queue_id("}
