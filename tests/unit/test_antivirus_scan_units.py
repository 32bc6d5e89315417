"""The anti-virus check and its notices, in process: the check's callable on
a policy Context, scanning with Debian's real clamd (started by the test on
a tiny signature database: tests/support/clamd.py). Notices are collected by
the Context's submit callable, here a list that keeps what it is handed,
as the queue would.

End to end through `gatebox run`: tests/integration/test_antivirus_scanning.py."""

from __future__ import annotations

import asyncio
import base64
import email
import io
import zipfile
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from firmware.config.store import Snapshot
from firmware.mail.policy import Context, Order, Policy
from softpaks.antivirus import notices, scan
from softpaks.antivirus.clamd_client import Clamd
from softpaks.antivirus.settings import (
    ACTION, ENABLED, MAX_SCAN_MB, NOTIFY_ADMIN, NOTIFY_RECIPIENT, NOTIFY_SENDER, ON_FAILURE,
    SCAN_ENTIRE_MESSAGE, SCAN_PARTS,
)
from tests.support.clamd import ClamdProcess, eicar_bytes

LOCAL, OUTSIDE = "jane@example.com", "bob@outside.test"


# ---- messages ---------------------------------------------------------------------------
def with_attachment(payload: bytes, filename: str = "report.bin") -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = OUTSIDE, LOCAL
    message["Subject"], message["Message-ID"] = "quarterly report", "<av-1@outside.test>"
    message.set_content("see the attachment\n")
    message.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename=filename)
    return message.as_bytes()


def zipped(name: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, payload)
    return buffer.getvalue()


def nested(payload: bytes) -> bytes:
    """multipart/mixed > multipart/mixed > multipart/alternative, and next to
    the alternative a base64 application part."""
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText("plain text"))
    alternative.attach(MIMEText("<p>html</p>", "html"))
    inner = MIMEMultipart("mixed")
    inner.attach(alternative)
    inner.attach(MIMEApplication(payload, "x-msdownload", Name="setup.exe"))
    outer = MIMEMultipart("mixed")
    outer["From"], outer["To"], outer["Subject"] = OUTSIDE, LOCAL, "nested"
    outer.attach(MIMEText("outer"))
    outer.attach(inner)
    return outer.as_bytes()


def attached_message(payload: bytes, encoding: str | None) -> bytes:
    """The infected mail attached as message/rfc822, as is (7bit) or, as
    some clients do though RFC 2046 forbids it, itself base64-encoded."""
    inner = with_attachment(payload, "eicar.com")
    outer = MIMEMultipart("mixed")
    outer["Subject"] = "forwarded"
    outer.attach(MIMEText("see below"))
    if encoding is None:
        outer.attach(MIMEMessage(email.message_from_bytes(inner)))
    else:
        part = MIMEApplication(inner, "octet-stream")
        part.replace_header("Content-Type", "message/rfc822")
        outer.attach(part)
    return outer.as_bytes()


CLEAN = with_attachment(b"nothing to see here\n" * 50)


# ---- a context like smtpd's ----------------------------------------------------------------
@pytest.fixture
def base_settings(store):
    return store.snapshot().values


def settings_with(base, **changes) -> Snapshot:
    values = {**base, ENABLED: True, "email.domain": "example.com",
              "system.hostname": "gw", **changes}
    return Snapshot(values=values, generation=1)


class Queue:
    """Stands where the queue is: keeps each Submission and names it."""

    def __init__(self):
        self.submitted = []

    async def __call__(self, submission):
        self.submitted.append(submission)
        return f"Q{len(self.submitted)}"


def context(settings, message: bytes, *, trusted=False, recipients=(LOCAL,),
            sender=OUTSIDE, queue=None) -> Context:
    ctx = Context(settings=settings, client_ip="192.0.2.9", trusted=trusted, helo="mx.test",
                  sender=sender, recipients=list(recipients), message=message,
                  data_size=len(message), submit=queue)
    ctx.stage = "data"
    return ctx


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clamd")
    process = ClamdProcess(directory).start()
    yield process
    process.remove()


def run(check, ctx):
    return asyncio.run(check(ctx))


def checker(clamd) -> scan.VirusScan:
    return scan.VirusScan(Clamd(clamd.socket_path))


# ---- pure parts ----------------------------------------------------------------------------
def test_decoded_parts_walks_into_nested_multiparts_and_attached_messages():
    payload = eicar_bytes()
    parts = scan.decoded_parts(nested(payload))
    assert payload in parts
    assert b"plain text" in parts and b"<p>html</p>" in parts and b"outer" in parts
    for encoding in (None, "base64"):
        assert payload in scan.decoded_parts(attached_message(payload, encoding)), encoding
    assert scan.decoded_parts(b"Subject: x\r\n\r\n") == []


def test_the_check_sits_at_data_in_the_content_position_and_never_fails_open(store):
    [check] = scan.policy_checks(store)
    assert (check.name, check.stage, check.order, check.on_error) == \
        ("antivirus", "data", Order.CONTENT, "tempfail")
    assert check.budget > scan.SCAN_SECONDS
    assert isinstance(check.run.scanner, Clamd)
    assert str(check.run.scanner.socket_path).endswith("clamd.sock")


def test_virus_names_are_made_safe_for_a_reply():
    assert scan.virus_name(scan.Finding("Evil\r\n250 ok\x00" + "x" * 300)).startswith("Evil??250 ok?")
    assert len(scan.virus_name(scan.Finding("y" * 300))) == scan.NAME_LIMIT
    assert scan.virus_name(scan.Finding("")) == "unnamed"


def test_who_gets_a_notice(base_settings):
    settings = settings_with(base_settings, **{NOTIFY_RECIPIENT: True, NOTIFY_SENDER: True,
                                               NOTIFY_ADMIN: True,
                                               "email.admin_address": "it@example.com"})
    inbound = context(settings, CLEAN, recipients=(LOCAL, "sam@example.com", OUTSIDE))
    made = notices.notices_for(inbound, "Test.Virus", quarantined=False)
    # Outside sender: never notified, whatever the setting; foreign recipient: no notice.
    assert [s.recipients for s in made] == [[LOCAL], ["sam@example.com"], ["it@example.com"]]
    assert all(s.sender == "" and s.origin == "notice" for s in made)

    outbound = context(settings, CLEAN, trusted=True, sender="boss@example.com",
                       recipients=(OUTSIDE,))
    assert [s.recipients for s in notices.notices_for(outbound, "Test.Virus", True)] == \
        [["boss@example.com"], ["it@example.com"]]

    quiet = settings_with(base_settings)
    assert notices.notices_for(context(quiet, CLEAN, trusted=True), "Test.Virus", False) == []


def test_a_notice_names_the_virus_and_never_carries_the_message(base_settings):
    settings = settings_with(base_settings, **{NOTIFY_RECIPIENT: True, NOTIFY_ADMIN: True})
    infected = with_attachment(eicar_bytes(), "eicar.com")
    ctx = context(settings, infected)
    recipient, admin = notices.notices_for(ctx, "Test.Virus", quarantined=True)
    for notice in (recipient, admin):
        assert b"Test.Virus" in notice.message
        assert eicar_bytes() not in notice.message
        assert base64.b64encode(eicar_bytes())[:40] not in notice.message
        assert b"eicar.com" not in notice.message
        assert b"Auto-Submitted: auto-generated" in notice.message
    assert b"quarantine" in recipient.message
    assert b"To: jane@example.com" in recipient.message
    assert b"From: Anti-Virus <postmaster@example.com>" in recipient.message
    assert b"Subject: Virus found: Test.Virus" in admin.message
    assert b"192.0.2.9" in admin.message and b"quarterly report" in admin.message


# ---- with clamd ------------------------------------------------------------------------------
def test_clean_mail_gets_the_header_and_is_counted(clamd, base_settings):
    ctx = context(settings_with(base_settings), CLEAN)
    assert run(checker(clamd), ctx) is None
    [(name, value)] = ctx.add_headers
    assert name == "X-Virus-Scanned"
    assert value.startswith("clean (ClamAV ") and value.endswith(" by gw.example.com")
    assert ctx.results[("antivirus", "clean")] == 1


@pytest.mark.parametrize("message", [
    with_attachment(eicar_bytes(), "eicar.com"),
    with_attachment(zipped("eicar.com", eicar_bytes()), "files.zip"),
    nested(eicar_bytes()),
], ids=["plain", "zip", "nested-base64"])
def test_infected_mail_is_rejected_with_554(clamd, base_settings, message):
    ctx = context(settings_with(base_settings), message)
    verdict = run(checker(clamd), ctx)
    assert (verdict.code, verdict.enhanced) == (554, "5.7.1")
    assert verdict.text.startswith("Message rejected: virus found (") and verdict.text.endswith(")")
    assert ctx.results[("antivirus", "infected")] == 1
    assert ctx.add_headers == [] and ctx.quarantine_kind == ""


@pytest.mark.parametrize("whole,parts", [(False, False), (True, True)])
def test_per_part_scanning_finds_what_the_whole_stream_finds(clamd, base_settings, whole, parts):
    settings = settings_with(base_settings, **{SCAN_ENTIRE_MESSAGE: whole, SCAN_PARTS: parts})
    assert run(checker(clamd), context(settings, nested(eicar_bytes()))).code == 554
    clean = context(settings, CLEAN)
    assert run(checker(clamd), clean) is None
    assert clean.results[("antivirus", "clean")] == 1


def test_quarantine_accepts_and_marks_the_message_and_sends_the_notices(clamd, base_settings):
    settings = settings_with(base_settings, **{ACTION: "quarantine", NOTIFY_RECIPIENT: True})
    queue = Queue()
    ctx = context(settings, with_attachment(eicar_bytes(), "eicar.com"), queue=queue)
    assert run(checker(clamd), ctx) is None
    assert ctx.quarantine_kind == "virus"
    assert ctx.hold_reason.startswith("virus found (")
    assert ctx.results[("antivirus", "quarantined")] == 1
    assert [s.recipients for s in queue.submitted] == [[LOCAL]]


def test_rejected_mail_notices_go_through_submit(clamd, base_settings):
    settings = settings_with(base_settings, **{NOTIFY_ADMIN: True, NOTIFY_SENDER: True})
    queue = Queue()
    ctx = context(settings, with_attachment(eicar_bytes()), queue=queue)   # outside sender
    assert run(checker(clamd), ctx).code == 554
    assert [s.recipients for s in queue.submitted] == [["postmaster@example.com"]]


def test_over_the_size_limit_is_skipped_with_a_header(clamd, base_settings):
    settings = settings_with(base_settings, **{MAX_SCAN_MB: 1})
    big = with_attachment(eicar_bytes() + b"\0" * (1024 * 1024), "big.bin")
    ctx = context(settings, big)
    assert run(checker(clamd), ctx) is None
    assert ctx.add_headers == [("X-Virus-Scanned", "skipped (size)")]
    assert ctx.results[("antivirus", "skipped_size")] == 1


def test_disabled_or_incomplete_data_is_not_scanned(clamd, base_settings):
    off = context(settings_with(base_settings, **{ENABLED: False}), with_attachment(eicar_bytes()))
    assert run(checker(clamd), off) is None and not off.results and not off.add_headers
    cut = context(settings_with(base_settings), with_attachment(eicar_bytes()))
    cut.data_complete = False
    assert run(checker(clamd), cut) is None and not cut.results


def test_scanner_down_defers_or_accepts_with_a_header(tmp_path, base_settings):
    # No clamd listens here: the same as a clamd that was stopped.
    down = scan.VirusScan(Clamd(tmp_path / "nobody.sock"))
    ctx = context(settings_with(base_settings), CLEAN)
    verdict = run(down, ctx)
    assert verdict.reply == "451 4.3.0 Virus scanner unavailable, try again later"
    assert ctx.results[("antivirus", "scanner_failed")] == 1

    ctx = context(settings_with(base_settings, **{ON_FAILURE: "accept"}), CLEAN)
    assert run(down, ctx) is None
    assert ctx.add_headers == [("X-Virus-Scanned", "no (scanner unavailable)")]
    assert ctx.results[("antivirus", "unscanned")] == 1


def test_in_the_chain_a_rejection_is_named_after_the_check(clamd, base_settings):
    policy = Policy([scan.virus_check(None, Clamd(clamd.socket_path))])
    ctx = context(settings_with(base_settings), with_attachment(eicar_bytes()))
    verdict = asyncio.run(policy.evaluate("data", ctx))
    assert (verdict.code, verdict.check) == (554, "antivirus")
