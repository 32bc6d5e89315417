"""Multi-drop against a real ISP: Debian's Dovecot (tests/support/isp.py)
serving one ISP mailbox over POP3/IMAP with TLS from a CA the test makes,
fetched into a box's real spool by submit, and end to end through a running
`gatebox run` box into a local mailbox read back over the box's IMAP."""

from __future__ import annotations

import asyncio
import email
import email.utils
import os
import re
import shutil
import signal
import smtplib
import tempfile
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import pytest

from firmware.config import Store
from firmware.mail.quarantine import Quarantine
from firmware.mail.queue import Spool
from softpaks.antivirus import paths
from softpaks.mailserver.retrieval import (Account, RetrievalContext, content, multidrop, seen,
                                           staging)
from softpaks.mailserver.retrieval.fetch import fetch_account, fetch_accounts
from softpaks.mailserver.retrieval.mailbox_client import MailboxError, open_mailbox
from softpaks.mailserver.retrieval.runner import RetrievalRunner
from tests.support.clamd import ClamdProcess, eicar_bytes
from tests.support.isp import Isp, IspSmtp, retrieval_process
from tests.support.mailserver import PASSWORD, MailBox
from tests.support.net import wait_for_banner, wait_until

LOGIN, SECRET = "office", "isp-secret-1"


@pytest.fixture
def outside_pytest_tmp():
    """Dovecot reads these as its own users. pytest's tmp root is private
    (0700), and a pytest session starting elsewhere makes it private again
    at any moment, so the ISP and the box live in a directory of their own."""
    path = Path(tempfile.mkdtemp(prefix="gatebox-multidrop-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def isp(outside_pytest_tmp):
    server = Isp(outside_pytest_tmp / "isp")
    server.add_user(LOGIN, SECRET)
    server.add_user("other", "other-secret")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def office(outside_pytest_tmp, vendor, box_serial, isp):
    """A Multi-drop box (not running: the tests drive the engine directly)
    with users bob and carol, fetching the ISP mailbox over POP3S."""
    return MailBox(outside_pytest_tmp / "box", vendor, **{"email.server_type": "multidrop",
                                                **isp.box_settings(LOGIN, SECRET)})


def context(box, now=None) -> RetrievalContext:
    store = Store(box.data)
    return RetrievalContext(store, Spool(box.data / "queue"), lambda qid: None, store.snapshot(),
                            time.time() if now is None else now)


def run(box, isp, now=None):
    results = multidrop.run(context(box, now), cafile=str(isp.ca_file))
    assert len(results) == 1
    return results[0]


def queued(box) -> list[tuple[list[str], bytes]]:
    """(recipients, message) of everything in the box's incoming queue."""
    spool = Spool(box.data / "queue")
    found = []
    for qid in spool.ids("incoming"):
        envelope, message = spool.load("incoming", qid)
        found.append(([r.address for r in envelope.recipients], message))
    return found


def by_subject(box) -> dict[str, list[str]]:
    return {email.message_from_bytes(m)["Subject"]: r for r, m in queued(box)}


# ---- the envelope header -----------------------------------------------------------------
VARIANTS = [
    ("delivered-to", [("Delivered-To", "bob@example.com")], "pop3", "tls"),
    ("x-original-to", [("X-Original-To", "<bob@example.com>")], "imap", "starttls"),
    ("x-envelope-to", [("X-Envelope-To", "bob@example.com")], "pop3", "starttls"),
    ("envelope-to", [("Envelope-To", "bob@example.com")], "imap", "tls"),
    ("received", [("Received", "from mail.outside.test by mx.isp.test with ESMTP id 1a2b\r\n"
                               "\tfor <bob@example.com>; Mon, 1 Jan 2024 10:00:00 +0000")], "pop3", "none"),
]


@pytest.mark.parametrize("header, lines, protocol, tls", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_each_envelope_header_names_the_recipient_never_to(office, isp, header, lines, protocol, tls):
    # To names carol: only the ISP's envelope header may decide.
    isp.drop(LOGIN, isp.message(to="carol@example.com", subject="variant", envelope=lines))
    office.configure(**{"email.envelope_header": header, **isp.box_settings(LOGIN, SECRET, protocol, tls)})
    result = run(office, isp)
    assert result.ok, result.detail
    assert (result.fetched, result.unaddressable) == (1, 0)
    assert by_subject(office) == {"variant": ["bob@example.com"]}
    assert isp.count(LOGIN) == 0, "fetched mail is deleted at the ISP"


def test_one_envelope_line_may_name_several_recipients(office, isp):
    isp.drop(LOGIN, isp.message(subject="both", envelope=[
        ("Envelope-To", "bob@example.com, carol@example.com")]))
    office.configure(**{"email.envelope_header": "envelope-to"})
    assert run(office, isp).fetched == 1
    assert by_subject(office) == {"both": ["bob@example.com", "carol@example.com"]}


def test_received_of_the_sender_below_the_isps_is_not_read(office, isp):
    # The ISP's Received (topmost) names no recipient: mail for more than one.
    isp.drop(LOGIN, isp.message(subject="multi", envelope=[
        ("Received", "from a by mx.isp.test with ESMTP; Mon, 1 Jan 2024 10:00:00 +0000"),
        ("Received", "from b by c with SMTP for <bob@example.com>; Mon, 1 Jan 2024 09:00:00 +0000")]))
    office.configure(**{"email.envelope_header": "received", "mailserver.unaddressable": "user",
                        "mailserver.unaddressable_user": "carol"})
    result = run(office, isp)
    assert (result.fetched, result.unaddressable) == (1, 1)
    assert by_subject(office) == {"multi": ["carol@example.com"]}


def test_a_forged_lower_delivered_to_is_ignored(office, isp):
    forged = [("Delivered-To", "bob@example.com")]
    isp.drop(LOGIN, isp.message(subject="for carol", envelope=[("Delivered-To", "carol@example.com")],
                                extra=forged))
    # The ISP names no one here; the forged line must not make it bob's.
    isp.drop(LOGIN, isp.message(subject="for nobody", envelope=[("Delivered-To", "nobody@example.com")],
                                extra=forged))
    result = run(office, isp)
    assert (result.fetched, result.unaddressable) == (2, 1)
    assert by_subject(office) == {"for carol": ["carol@example.com"],
                                  "for nobody": ["postmaster@example.com"]}


# ---- unknown recipients -------------------------------------------------------------------------
def test_unknown_recipients_go_to_the_unaddressable_user_never_to_to(office, isp):
    office.configure(**{"mailserver.unaddressable": "user", "mailserver.unaddressable_user": "carol"})
    isp.drop(LOGIN, isp.message(to="bob@example.com", subject="unknown user",
                                envelope=[("Delivered-To", "nosuch@example.com")]))
    isp.drop(LOGIN, isp.message(to="bob@example.com", subject="other domain",
                                envelope=[("Delivered-To", "bob@elsewhere.test")]))
    isp.drop(LOGIN, isp.message(to="bob@example.com", subject="no envelope header"))
    isp.drop(LOGIN, isp.message(subject="known", envelope=[("Delivered-To", "bob@example.com")]))
    result = run(office, isp)
    assert (result.fetched, result.unaddressable) == (4, 3)
    assert by_subject(office) == {"unknown user": ["carol@example.com"],
                                  "other domain": ["carol@example.com"],
                                  "no envelope header": ["carol@example.com"],
                                  "known": ["bob@example.com"]}
    assert "3 to the unaddressable-mail user" in result.summary


def test_unknown_recipients_go_to_postmaster_without_a_chosen_user(office, isp):
    isp.drop(LOGIN, isp.message(to="bob@example.com", subject="lost",
                                envelope=[("Delivered-To", "nosuch@example.com")]))
    assert run(office, isp).unaddressable == 1
    assert by_subject(office) == {"lost": ["postmaster@example.com"]}


# ---- per session, no loss, no duplicates ---------------------------------------------------------
def test_maximum_messages_to_retrieve_per_session(office, isp):
    for n in range(5):
        isp.drop(LOGIN, isp.message(subject=f"m{n}", envelope=[("Delivered-To", "bob@example.com")]))
    office.configure(**{"email.max_retrieve_per_session": "2"})
    first = run(office, isp)
    assert (first.fetched, first.left) == (2, 3)
    assert "3 left for the next run" in first.summary
    assert isp.count(LOGIN) == 3
    assert sorted(by_subject(office)) == ["m0", "m1"]
    assert (run(office, isp).fetched, run(office, isp).fetched) == (2, 1)
    assert sorted(by_subject(office)) == [f"m{n}" for n in range(5)]
    assert isp.count(LOGIN) == 0


def test_the_same_message_under_a_new_uid_is_a_duplicate(office, isp):
    message = isp.message(subject="once", envelope=[("Delivered-To", "bob@example.com")])
    isp.drop(LOGIN, message)
    assert run(office, isp).fetched == 1
    isp.drop(LOGIN, message)
    again = run(office, isp)
    assert (again.ok, again.fetched, again.duplicates) == (True, 0, 1)
    assert len(queued(office)) == 1
    assert isp.count(LOGIN) == 0, "the duplicate is removed at the ISP too"


def test_another_message_under_a_message_id_seen_before_is_not_a_duplicate(office, isp):
    envelope = [("Delivered-To", "bob@example.com")]
    isp.drop(LOGIN, isp.message(subject="first", envelope=envelope, message_id="<same@outside.test>"))
    assert run(office, isp).fetched == 1
    # The same message again, with another ISP line on top: still a duplicate.
    isp.drop(LOGIN, isp.message(subject="first", envelope=[("X-ISP-Spool", "2"), *envelope],
                                message_id="<same@outside.test>"))
    # A different message that reuses (or guessed) the Message-ID is not.
    isp.drop(LOGIN, isp.message(subject="second", envelope=envelope, body="Other text.\r\n",
                                message_id="<same@outside.test>"))
    again = run(office, isp)
    assert (again.fetched, again.duplicates) == (1, 1)
    assert sorted(by_subject(office)) == ["first", "second"]


def test_uids_seen_in_an_earlier_session_are_deleted_not_fetched_again(office, isp):
    # The state a crash leaves after the queue and the seen table have the
    # message but before the ISP deleted it: the session ended without QUIT.
    isp.drop(LOGIN, isp.message(subject="queued once", envelope=[("Delivered-To", "bob@example.com")]))
    account = multidrop.account(context(office).settings)
    with open_mailbox(account, cafile=str(isp.ca_file)) as mailbox:
        (listed,) = mailbox.list()
    ctx = context(office)
    seen.record_fetched(ctx.store, "multidrop", listed.uid, "", [], ctx.now)
    result = run(office, isp)
    assert (result.ok, result.fetched, result.duplicates) == (True, 0, 0)
    assert queued(office) == []
    assert isp.count(LOGIN) == 0


# ---- isolation ----------------------------------------------------------------------------------
def test_a_malformed_message_does_not_stop_the_others(office, isp):
    isp.drop(LOGIN, isp.message(subject="before", envelope=[("Delivered-To", "bob@example.com")]))
    isp.drop(LOGIN, b"\x00\xff garbage without a header\r\n\x01\x02\r\n" + bytes(range(256)) * 40)
    isp.drop(LOGIN, b"Delivered-To: bob@exa\x07mple.com\r\nSubject: control character\r\n\r\nx\r\n")
    isp.drop(LOGIN, isp.message(subject="after", envelope=[("Delivered-To", "carol@example.com")]))
    result = run(office, isp)
    assert result.ok and result.fetched == 4 and result.unaddressable == 2
    subjects = by_subject(office)
    assert subjects["before"] == ["bob@example.com"] and subjects["after"] == ["carol@example.com"]
    assert subjects["control character"] == ["postmaster@example.com"]
    assert isp.count(LOGIN) == 0


def test_a_message_that_fails_is_left_at_the_isp_and_the_error_shown(office, isp):
    for subject in ("one", "breaks", "three"):
        isp.drop(LOGIN, isp.message(subject=subject, envelope=[("Delivered-To", "bob@example.com")]))
    ctx = context(office)
    normal = multidrop.recipients_for(ctx.store, ctx.settings, "delivered-to")

    def recipients_for(message):
        if b"Subject: breaks" in message:
            raise RuntimeError("cannot work out this one")
        return normal(message)
    result = fetch_account(ctx, multidrop.account(ctx.settings), recipients_for,
                           cafile=str(isp.ca_file))
    assert result.ok and result.fetched == 2
    assert "cannot work out this one" in result.detail
    assert sorted(by_subject(office)) == ["one", "three"]
    assert [b"Subject: breaks" in m for m in isp.stored(LOGIN)] == [True]
    state = seen.state(ctx.store, "multidrop")
    assert state["ok"] == 1 and "cannot work out this one" in state["last_error"]


def test_a_failed_account_does_not_stop_the_others(office, isp):
    isp.drop("other", isp.message(subject="for the good account",
                                  envelope=[("Delivered-To", "bob@example.com")]))
    port = isp.port("pop3", "tls")
    accounts = [
        Account("remote:1", isp.host, port, "pop3", "tls", True, "other", "wrong password"),
        Account("remote:2", isp.other_host, port, "pop3", "tls", True, "other", "other-secret"),
        Account("remote:3", isp.host, isp.port("imap", "tls"), "imap", "tls", True, "other",
                "other-secret"),
    ]
    ctx = context(office)
    results = fetch_accounts(ctx, accounts, lambda account: lambda message: ["bob@example.com"],
                             cafile=str(isp.ca_file))
    assert [r.ok for r in results] == [False, False, True]
    assert "Authentication failed" in results[0].detail
    assert "not trusted" in results[1].detail and "127.0.0.2" in results[1].detail
    assert results[2].fetched == 1
    assert seen.state(ctx.store, "remote:2")["last_error"] == results[1].detail
    assert by_subject(office) == {"for the good account": ["bob@example.com"]}


# ---- the certificate ------------------------------------------------------------------------------
def test_the_isps_certificate_is_checked_unless_turned_off(office, isp):
    isp.drop(LOGIN, isp.message(subject="secure", envelope=[("Delivered-To", "bob@example.com")]))
    untrusted = multidrop.run(context(office))[0]   # the test CA is not trusted
    assert not untrusted.ok and "not trusted" in untrusted.detail
    office.configure(**isp.box_settings(LOGIN, SECRET, "imap", "starttls", host=isp.other_host))
    wrong_name = run(office, isp)
    assert not wrong_name.ok and "mismatch" in wrong_name.detail
    assert isp.count(LOGIN) == 1 and queued(office) == []
    office.configure(**isp.box_settings(LOGIN, SECRET, "imap", "starttls", host=isp.other_host,
                                        verify=False))
    assert run(office, isp).fetched == 1
    with pytest.raises(MailboxError, match="Authentication failed"):
        open_mailbox(Account("x", isp.host, isp.port("imap", "tls"), "imap", "tls", True, LOGIN,
                             "wrong"), cafile=str(isp.ca_file))


# ---- auto-detect ---------------------------------------------------------------------------------
def test_auto_detect_learns_the_header_and_occurrence_the_isp_writes(office, isp):
    # This ISP writes its own mailbox's Delivered-To on top, then the
    # recipient's: the second occurrence is the envelope recipient.
    mx = IspSmtp(isp, LOGIN, headers=("Delivered-To: office@isp.test", "Delivered-To: {rcpt}")).start()
    try:
        office.configure(**{"email.envelope_header": "auto",
                            "email.relay_server_address": f"{mx.host}:{mx.port}"})
        mx_sender = smtplib.SMTP(mx.host, mx.port, timeout=20)
        mx_sender.sendmail("alice@outside.test", ["carol@example.com"],
                           b"From: alice@outside.test\r\nTo: bob@example.com\r\n"
                           b"Delivered-To: bob@example.com\r\nSubject: via the mx\r\n"
                           b"Message-ID: <mx.1@outside.test>\r\n\r\nhi\r\n")
        mx_sender.quit()
        result = run(office, isp)
    finally:
        mx.stop()
    assert result.ok, result.detail
    ctx = context(office)
    assert multidrop.detected(ctx.store) == ("delivered-to", 2)
    probe = [rcpts for _, rcpts in mx.accepted if rcpts[0].startswith("gatebox-probe-")]
    assert len(probe) == 1, mx.accepted
    # The probe is deleted at the ISP and never queued; the real mail went
    # by the learnt occurrence, not the forged third line or To.
    assert by_subject(office) == {"via the mx": ["carol@example.com"]}
    assert isp.count(LOGIN) == 0


def test_auto_detect_that_finds_nothing_fetches_nothing(office, isp):
    mx = IspSmtp(isp, LOGIN, headers=("X-Spam-Score: 0",)).start()
    try:
        office.configure(**{"email.envelope_header": "auto",
                            "email.relay_server_address": f"{mx.host}:{mx.port}"})
        isp.drop(LOGIN, isp.message(subject="waits", envelope=[("Delivered-To", "bob@example.com")]))
        result = run(office, isp)
    finally:
        mx.stop()
    assert not result.ok and "no Delivered-To" in result.detail
    assert queued(office) == [] and isp.count(LOGIN) == 1
    assert multidrop.detected(context(office).store) is None


# ---- end to end through a running box ---------------------------------------------------------------
@pytest.fixture
def running_office(office):
    office.start()
    try:
        wait_for_banner(office.host, office.imap_port, timeout=60, accept=(b"* OK",))
        yield office
    finally:
        office.stop()


def imap_subjects(box, user: str) -> list[str]:
    imap = box.imap()
    try:
        imap.login(user, PASSWORD)
        imap.select("INBOX")
        _, data = imap.search(None, "ALL")
        subjects = []
        for number in data[0].split():
            _, parts = imap.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects.append(email.message_from_bytes(parts[0][1])["Subject"])
        return sorted(subjects)
    finally:
        imap.logout()


def test_fetched_mail_reaches_the_local_mailboxes(running_office, isp):
    box = running_office
    box.configure(**{"mailserver.unaddressable": "user", "mailserver.unaddressable_user": "carol"})
    isp.drop(LOGIN, isp.message(to="carol@example.com", subject="for bob",
                                envelope=[("X-Original-To", "bob@example.com")]))
    isp.drop(LOGIN, isp.message(subject="for no one", envelope=[("X-Original-To", "x@example.com")]))
    box.configure(**{"email.envelope_header": "x-original-to"})
    child = retrieval_process(box.data, isp)
    output, _ = child.communicate(timeout=120)
    assert child.returncode == 0, output
    assert "multidrop: 2 fetched, 1 to the unaddressable-mail user" in output
    box.wait_for_mail("bob", 1)
    box.wait_for_mail("carol", 1)
    assert imap_subjects(box, "bob") == ["for bob"]
    assert imap_subjects(box, "carol") == ["for no one"]
    assert isp.count(LOGIN) == 0


class Death(BaseException):
    """The process dying at one step: no handler of the fetch catches it,
    and the POP3 session ends without QUIT, as after kill -9."""


def _die(*_, **__):
    raise Death()


def _die_once(real):
    calls = []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise Death()
        return real(*args, **kwargs)
    return step


STEPS = {
    "before the file is written": lambda mp: mp.setattr(staging, "submit", _die),
    "after the file, before the record": lambda mp: mp.setattr(seen, "record_fetched", _die),
    "after the record, before the release": lambda mp: mp.setattr(
        staging, "_release", _die_once(staging._release)),
}


@pytest.mark.parametrize("step", STEPS)
def test_a_death_at_each_step_of_queuing_loses_and_duplicates_nothing(office, isp, step):
    for n in range(3):
        isp.drop(LOGIN, isp.message(subject=f"step {n}", message_id=f"<step.{n}@outside.test>",
                                    envelope=[("Delivered-To", "bob@example.com")]))
    delivered = []

    def deliver():
        # What qmgr does between the sessions: the first copy is long gone
        # from the queue, so nothing in it can tell the second run about it.
        spool = Spool(office.data / "queue")
        for qid in spool.ids("incoming"):
            delivered.append(email.message_from_bytes(spool.load("incoming", qid)[1])["Subject"])
            spool.remove("incoming", qid)

    with pytest.MonkeyPatch.context() as patch:
        STEPS[step](patch)
        with pytest.raises(Death):
            run(office, isp)
    deliver()
    assert isp.count(LOGIN) == 3, "nothing is deleted at the ISP without QUIT"
    result = run(office, isp)
    assert result.ok, result.detail
    deliver()
    assert sorted(delivered) == ["step 0", "step 1", "step 2"]
    assert isp.count(LOGIN) == 0
    spool = Spool(office.data / "queue")
    assert spool.ids("hold") == [], "nothing staged is left behind"
    assert Store(office.data).db.execute(
        "SELECT COUNT(*) FROM mail_retrieval_staged").fetchone()[0] == 0


def _runner_started_and_stopped(box):
    # Its first look at the schedule comes after the settling: waiting on it
    # waits for the repair, and no session was due in between.
    runner = RetrievalRunner(box.data)
    asyncio.run(runner.start())
    try:
        wait_until(lambda: runner.looks >= 1, 30, 0.05, "the retrieval runner's first look")
    finally:
        asyncio.run(runner.stop())
    assert runner.sessions == 0, "a session ran: the repair was not what settled"


@pytest.mark.parametrize("left", ["recorded, not released", "quarantined, not recorded"])
def test_the_retrieval_service_settles_at_start_what_a_death_left_staged(office, isp, left):
    office.cli("license", "activate", office.vendor.issue(antispam=None))
    office.cli("antispam", "filter", "set", "content_filter=on", "default_filter=off",
               "custom_filter=off", "heuristic=on", "action=quarantine")
    spam = left == "quarantined, not recorded"
    isp.drop(LOGIN, isp.message(subject=left, body=f"{GTUBE}\r\n" if spam else "hello\r\n",
                                message_id="<left.1@outside.test>",
                                envelope=[("Delivered-To", "bob@example.com")]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(*((seen, "record_fetched") if spam else (staging, "_release")), _die)
        with pytest.raises(Death):
            run(office, isp)
    spool = Spool(office.data / "queue")
    assert (len(spool.ids("hold")), len(Quarantine(office.data).items())) == \
        ((0, 1) if spam else (1, 0))
    _runner_started_and_stopped(office)
    assert spool.ids("hold") == [] and Quarantine(office.data).items() == []
    assert Store(office.data).db.execute(
        "SELECT COUNT(*) FROM mail_retrieval_staged").fetchone()[0] == 0
    if not spam:
        assert [email.message_from_bytes(m)["Subject"] for _, m in queued(office)] == [left]
        return
    # Never recorded, so still at the ISP: the next session quarantines it, once.
    result = run(office, isp)
    assert result.ok and result.fetched == 1, result.detail
    assert len(Quarantine(office.data).items()) == 1 and queued(office) == []


GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

QUARANTINE_STEPS = {
    "before an item is written": lambda mp: mp.setattr(Quarantine, "put", _die),
    "after the items, before the record": lambda mp: mp.setattr(seen, "record_fetched", _die),
}


@pytest.mark.parametrize("step", QUARANTINE_STEPS)
def test_a_death_while_quarantining_a_fetched_message_leaves_one_item_per_recipient(
        office, isp, step):
    office.cli("license", "activate", office.vendor.issue(antispam=None))
    office.cli("antispam", "filter", "set", "content_filter=on", "default_filter=off",
               "custom_filter=off", "heuristic=on", "action=quarantine")
    office.configure(**{"email.envelope_header": "envelope-to"})
    # Spam gets a quarantine item for each recipient: two ids staged for one message.
    isp.drop(LOGIN, isp.message(subject="spam for two", body=f"{GTUBE}\r\n",
                                message_id="<gtube.1@outside.test>",
                                envelope=[("Envelope-To", "bob@example.com, carol@example.com")]))
    with pytest.MonkeyPatch.context() as patch:
        QUARANTINE_STEPS[step](patch)
        with pytest.raises(Death):
            run(office, isp)
    assert isp.count(LOGIN) == 1, "nothing is deleted at the ISP without QUIT"
    result = run(office, isp)
    assert result.ok and result.fetched == 1, result.detail
    held = Quarantine(office.data).items()
    assert sorted(r.address for item in held for r in item.envelope.recipients) == \
        ["bob@example.com", "carol@example.com"]
    assert all(item.kind == "spam" for item in held)
    assert isp.count(LOGIN) == 0 and queued(office) == []
    assert Store(office.data).db.execute(
        "SELECT COUNT(*) FROM mail_retrieval_staged").fetchone()[0] == 0


@pytest.mark.parametrize("died", [False, True], ids=["", "after-a-death-before-the-record"])
@pytest.mark.parametrize("order", [("bob", "carol"), ("carol", "bob")])
def test_each_recipient_of_a_fetched_message_gets_its_own_anti_spam_record(office, isp, order,
                                                                            died):
    # smtpd would defer the second recipient at RCPT (another filter
    # record) and take it in a transaction of its own; a fetch has no RCPT
    # stage, so it must split the message the same way, whichever comes first.
    office.cli("license", "activate", office.vendor.issue(antispam=None))
    office.cli("antispam", "filter", "set", "content_filter=on", "default_filter=off",
               "custom_filter=off", "heuristic=on", "action=quarantine")
    office.cli("antispam", "filter", "set", "--user", "bob", "content_filter=off")
    office.configure(**{"email.envelope_header": "envelope-to"})
    isp.drop(LOGIN, isp.message(subject="gtube for two", body=f"{GTUBE}\r\n",
                                message_id="<gtube.2@outside.test>",
                                envelope=[("Envelope-To", ", ".join(
                                    f"{name}@example.com" for name in order))]))
    if died:
        # Both parts written, the fetch not recorded: both go, and come again.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(seen, "record_fetched", _die)
            with pytest.raises(Death):
                run(office, isp)
    result = run(office, isp)
    assert result.ok and result.fetched == 1, result.detail
    assert len(result.queued) == 2, "one transaction for each filter record"
    held = Quarantine(office.data).items()
    assert [r.address for item in held for r in item.envelope.recipients] == ["carol@example.com"]
    assert [item.kind for item in held] == ["spam"]
    [(recipients, message)] = queued(office)
    assert recipients == ["bob@example.com"]
    assert b"X-Spam-Flag: YES" not in message, "bob's filter is off: his copy is not judged"
    assert isp.count(LOGIN) == 0
    assert Store(office.data).db.execute(
        "SELECT COUNT(*) FROM mail_retrieval_staged").fetchone()[0] == 0


def test_kill_9_in_the_middle_of_a_fetch_loses_and_duplicates_nothing(running_office, isp):
    box = running_office
    total = 150
    body = ("x" * 76 + "\r\n") * 800   # about 60 kB each, so the fetch takes a while
    for n in range(total):
        isp.drop(LOGIN, isp.message(subject=f"bulk {n:03d}", body=body,
                                    message_id=f"<bulk.{n}@outside.test>",
                                    envelope=[("Delivered-To", "bob@example.com")]))
    child = retrieval_process(box.data, isp)
    spool = Spool(box.data / "queue")
    delivered = box.data / "mail"

    def taken():
        in_queue = sum(spool.count(state) for state in ("incoming", "active", "deferred"))
        in_mailboxes = sum(1 for path in delivered.rglob("*") if path.is_file()
                           and path.parent.name in ("new", "cur")) if delivered.exists() else 0
        return in_queue + in_mailboxes
    wait_until(lambda: taken() >= 10 or child.poll() is not None, 60, 0.01, "the fetch to start")
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL, "the fetch finished before it could be killed"
    # POP3 deletes only at QUIT, which never came: everything is still at the ISP.
    assert isp.count(LOGIN) == total
    again = retrieval_process(box.data, isp)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert "failed" not in output, output
    assert isp.count(LOGIN) == 0
    box.wait_for_mail("bob", total, timeout=180)
    # Each exactly once: none lost, none twice.
    assert imap_subjects(box, "bob") == [f"bulk {n:03d}" for n in range(total)]


# ---- fetched mail is scanned as smtpd's is --------------------------------------------------
def _infected(subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "eve@outside.test", "bob@example.com", subject
    message["Message-ID"] = email.utils.make_msgid(domain="outside.test")
    message.set_content("the file you asked for\n")
    message.add_attachment(eicar_bytes(), maintype="application", subtype="octet-stream",
                           filename="eicar.com")
    return b"Delivered-To: bob@example.com\r\n" + message.as_bytes(policy=SMTP_POLICY)


def test_fetched_mail_is_scanned_a_virus_is_quarantined_a_scanner_down_leaves_it(
        office, isp, outside_pytest_tmp):
    office.cli("license", "activate", office.vendor.issue(antivirus=None))
    office.configure(**{"antivirus.enabled": "on"})
    clamd = ClamdProcess(outside_pytest_tmp / "clamd",
                         socket_path=paths.socket_path(office.data)).start()
    try:
        isp.drop(LOGIN, isp.message(subject="clean", envelope=[("Delivered-To", "bob@example.com")]))
        isp.drop(LOGIN, _infected("infected"))
        result = run(office, isp)
        assert result.ok and result.fetched == 2, result.detail
        assert isp.count(LOGIN) == 0
        [(recipients, message)] = queued(office)
        assert recipients == ["bob@example.com"] and b"Subject: clean" in message
        assert re.search(rb"^X-Virus-Scanned: clean ", message, re.MULTILINE)
        [held] = Quarantine(office.data).items()
        assert held.kind == "virus" and "virus found" in held.reason
        assert [r.address for r in held.envelope.recipients] == ["bob@example.com"]
    finally:
        clamd.stop()
    # No scanner: When the Scanner Fails says reject temporarily, so the mail waits at the ISP.
    isp.drop(LOGIN, isp.message(subject="while down", envelope=[("Delivered-To", "bob@example.com")]))
    result = run(office, isp)
    assert result.fetched == 0 and "left at the ISP" in result.detail
    assert isp.count(LOGIN) == 1 and len(queued(office)) == 1


def _scanner_down_for_the_second_part(patch):
    real, calls = content.ContentScreen.__call__, []

    def screen(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise content.TryLater("antivirus: 451 4.3.0 Virus scanner unavailable")
        return real(self, *args)
    patch.setattr(content.ContentScreen, "__call__", screen)


NOTICE_INTERRUPTIONS = {
    "a death after the notice, before the record": lambda mp: mp.setattr(
        seen, "record_fetched", _die),
    "the scanner down for the second part": _scanner_down_for_the_second_part,
}


@pytest.mark.parametrize("interruption", NOTICE_INTERRUPTIONS)
def test_a_fetch_taken_again_after_an_interruption_sends_each_virus_notice_once(
        office, isp, outside_pytest_tmp, interruption):
    # A virus notice is staged with the message it is about: a notice queued
    # at once would be queued again when the message is fetched again.
    office.cli("license", "activate", office.vendor.issue(antivirus=None, antispam=None))
    office.configure(**{"antivirus.enabled": "on", "antivirus.notify_admin": "on",
                        "email.envelope_header": "envelope-to"})
    # bob's own filter record makes two transactions (and two scans) of one message.
    office.cli("antispam", "filter", "set", "content_filter=on", "default_filter=off",
               "custom_filter=off", "heuristic=on")
    office.cli("antispam", "filter", "set", "--user", "bob", "content_filter=off")
    message = _infected("infected for two").replace(
        b"Delivered-To: bob@example.com", b"Envelope-To: bob@example.com, carol@example.com")
    isp.drop(LOGIN, message)
    clamd = ClamdProcess(outside_pytest_tmp / "clamd",
                         socket_path=paths.socket_path(office.data)).start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            NOTICE_INTERRUPTIONS[interruption](patch)
            try:
                run(office, isp)
            except Death:
                pass
        assert isp.count(LOGIN) == 1, "the message waits at the ISP"
        assert queued(office) == [], "no notice goes out for a fetch not recorded"
        result = run(office, isp)
    finally:
        clamd.stop()
    assert result.ok and result.fetched == 1, result.detail
    assert isp.count(LOGIN) == 0
    held = Quarantine(office.data).items()
    assert sorted(r.address for item in held for r in item.envelope.recipients) == \
        ["bob@example.com", "carol@example.com"]
    notices = [email.message_from_bytes(m)["Subject"] for _, m in queued(office)]
    assert len(notices) == 2 and all("Virus found" in subject for subject in notices), \
        "one notice for each transaction, none twice"
    assert Spool(office.data / "queue").ids("hold") == []


# ---- hostile or awkward messages at the ISP ----------------------------------------------------
@pytest.mark.parametrize("protocol, tls", [("pop3", "tls"), ("imap", "tls")])
def test_long_lines_pass_and_a_message_over_the_size_limit_waits_at_the_isp(office, isp,
                                                                            protocol, tls):
    office.configure(**{"email.max_message_size_mb": "1",
                        **isp.box_settings(LOGIN, SECRET, protocol, tls)})
    envelope = [("Delivered-To", "bob@example.com")]
    isp.drop(LOGIN, isp.message(subject="huge", envelope=envelope,
                                body="x" * 76 + "\r\n" + ("y" * 998 + "\r\n") * 1200))
    # poplib alone refuses lines over 2048 octets; real mail has them (HTML on one line).
    isp.drop(LOGIN, isp.message(subject="long line", envelope=envelope,
                                body="<p>" + "z" * 6000 + "</p>\r\n"))
    result = run(office, isp)
    assert result.ok and result.fetched == 1
    assert "over the 1048576 the box takes" in result.detail
    assert list(by_subject(office)) == ["long line"]
    [(_, message)] = queued(office)
    assert b"z" * 6000 in message
    assert isp.count(LOGIN) == 1, "the message over the limit is left at the ISP"


def test_the_senders_forged_verdict_fields_are_removed_from_fetched_mail(office, isp):
    isp.drop(LOGIN, isp.message(subject="forged", envelope=[("Delivered-To", "bob@example.com")],
                                extra=[("X-Spam-Flag", "NO"), ("X-Virus-Scanned", "clean"),
                                       ("X-Gatebox-Checks", "total=-100.0")]))
    assert run(office, isp).fetched == 1
    [(_, message)] = queued(office)
    header = message.split(b"\r\n\r\n", 1)[0]
    assert b"X-Spam-Flag" not in header and b"X-Virus-Scanned" not in header
    assert re.search(rb"^X-Gatebox-Checks: total=0\.0", header, re.MULTILINE)
