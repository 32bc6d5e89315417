"""The quarantine's SQLite index (firmware.mail.quarantine_index): built
from the held files, kept up to date with them, rebuilt when missing or
damaged; searched by sender, recipient, subject and dates, a page at a
time, with the score and report of the held message's own header."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from firmware.cli import main
from firmware.config import Store
from firmware.mail import scoring
from firmware.mail.policy import Symbol
from firmware.mail.quarantine import Quarantine, fired_rules
from firmware.mail.quarantine_index import Search
from firmware.mail.spool_index import INDEX_NAME
from firmware.mail.queue import Spool
from firmware.mail.submit import Submission

DAY = 86400


def spam_message(subject: str, total: float, symbols) -> bytes:
    body = (f"Subject: {subject}\r\nFrom: Seller <seller@example.net>\r\n"
            f"Message-ID: <{time.time_ns()}@example.net>\r\n\r\nBuy now.\r\n").encode()
    store_settings = {"email.spam_tag_score": None, "email.spam_quarantine_score": None,
                      "email.spam_reject_score": None}
    action = scoring.Action(scoring.QUARANTINE, total, 5.0)
    return scoring.mark(body, action, symbols, [], store_settings, "gatebox.example.com",
                        scoring.SpamPolicy(tag=5.0, quarantine=5.0, tag_subject=False))


def hold(data, *, sender="seller@example.net", recipients=("bob@example.com",), kind="spam",
         subject="Cheap watches", total=12.5, received=None,
         symbols=(Symbol("GTUBE", 10.0, "the GTUBE test string"), Symbol("DATE_MISSING", 2.5))):
    if not (data / "gatebox.db").exists():
        Store.create(data).close()
        Spool(data / "queue").create()
    store = Store(data)
    try:
        return Quarantine(data).put(Submission(
            sender=sender, recipients=list(recipients), origin="smtpd", direction="inbound",
            message=spam_message(subject, total, list(symbols)), client_address="192.0.2.9",
            received=received or time.time()), kind,
            f"spam score {total:.1f} >= 5.0 (quarantine score)", store.snapshot())
    finally:
        store.close()


def test_spam_is_held_one_item_per_recipient_and_indexed_with_its_score_and_report(tmp_path):
    hold(tmp_path, recipients=("bob@example.com", "carol@example.com"))
    page = Quarantine(tmp_path).search()
    assert page.total == 2
    assert sorted(r.recipients[0] for r in page.rows) == ["bob@example.com", "carol@example.com"]
    assert all(len(r.recipients) == 1 for r in page.rows)
    row = page.rows[0]
    assert (row.kind, row.score, row.subject, row.sender) == ("spam", 12.5, "Cheap watches",
                                                               "seller@example.net")
    assert "GTUBE(10.0) the GTUBE test string" in row.report
    assert row.header_from == "Seller <seller@example.net>"


def test_a_virus_stays_one_item_for_all_its_recipients(tmp_path):
    hold(tmp_path, kind="virus", recipients=("bob@example.com", "carol@example.com"))
    [row] = Quarantine(tmp_path).search().rows
    assert row.kind == "virus" and row.recipients == ["bob@example.com", "carol@example.com"]


def test_search_by_sender_recipient_subject_and_dates(tmp_path):
    now = time.time()
    old = hold(tmp_path, sender="old@example.org", subject="Old offer", received=now - 10 * DAY)
    mid = hold(tmp_path, sender="news@example.net", recipients=("carol@example.com",),
               subject="Weekly 100% news_letter", received=now - 3 * DAY)
    new = hold(tmp_path, sender="eve@example.net", subject="Fresh", received=now)
    quarantine = Quarantine(tmp_path)

    def ids(**terms):
        return [row.id for row in quarantine.search(Search(**terms)).rows]

    assert ids() == [new, mid, old]
    assert ids(sender="EXAMPLE.ORG") == [old]
    assert ids(sender="seller") == [new, mid, old]      # the From: field matches too
    assert ids(recipient="carol") == [mid]
    assert ids(subject="100%") == [mid] and ids(subject="news_l") == [mid]
    assert ids(subject="%") == [mid]                   # a wildcard character is a character
    assert ids(since=now - 5 * DAY) == [new, mid]
    assert ids(until=now - 5 * DAY) == [old]
    assert ids(since=now - 5 * DAY, until=now - DAY, recipient="carol") == [mid]
    assert ids(kind="virus") == []


def test_pages_follow_each_other_newest_first(tmp_path):
    now = time.time()
    made = [hold(tmp_path, subject=f"n{i}", received=now - i * 60) for i in range(7)]
    quarantine = Quarantine(tmp_path)
    first, second, last = (quarantine.search(offset=o, limit=3) for o in (0, 3, 6))
    assert [r.id for r in first.rows + second.rows + last.rows] == made
    assert first.total == 7 and len(last.rows) == 1


def test_the_index_follows_the_files_release_delete_and_a_new_item(tmp_path):
    first, second = hold(tmp_path, subject="one"), hold(tmp_path, subject="two")
    quarantine = Quarantine(tmp_path)
    assert quarantine.search().total == 2
    store = Store(tmp_path)
    try:
        quarantine.release_many([first], Spool(tmp_path / "queue"), lambda qid: None, store, "t")
        quarantine.delete_many([second], store, "t")
    finally:
        store.close()
    assert quarantine.search().total == 0
    third = hold(tmp_path, subject="three")
    assert [r.id for r in quarantine.search().rows] == [third]


@pytest.mark.parametrize("damage", ["missing", "garbage", "other_version"])
def test_the_index_is_rebuilt_from_the_files(tmp_path, damage):
    made = {hold(tmp_path, subject="kept one"), hold(tmp_path, subject="kept two")}
    quarantine = Quarantine(tmp_path)
    assert quarantine.search().total == 2
    path = quarantine.spool.root / INDEX_NAME
    for suffix in ("-wal", "-shm"):
        (path.parent / (path.name + suffix)).unlink(missing_ok=True)
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    else:
        import sqlite3
        db = sqlite3.connect(path)
        db.execute("UPDATE meta SET value = 'from other firmware' WHERE key = 'version'")
        db.commit()
        db.close()
    page = quarantine.search(Search(subject="kept"))
    assert {r.id for r in page.rows} == made and page.rows[0].score == 12.5


def test_a_file_that_cannot_be_read_is_left_out(tmp_path):
    good = hold(tmp_path)
    quarantine = Quarantine(tmp_path)
    (quarantine.spool.dir("hold") / "GARBAGE").write_bytes(b"not a queue file")
    assert [r.id for r in quarantine.search().rows] == [good]


def test_what_scored_is_read_from_the_report_or_the_checks_field():
    fired = fired_rules(spam_message("x", 12.5, [Symbol("GTUBE", 10.0, "test string; <b>x</b>"),
                                                  Symbol("DATE_MISSING", 2.5)]))
    assert [(f.name, f.score) for f in fired] == [("GTUBE", 10.0), ("DATE_MISSING", 2.5)]
    assert fired[0].detail == "test string; <b>x</b>"
    untagged = b"X-Gatebox-Checks: total=3.0; SPF_FAIL(2.0), RDNS_NONE(1.0)\r\nSubject: x\r\n\r\nhi"
    assert [(f.name, f.score) for f in fired_rules(untagged)] == [("SPF_FAIL", 2.0),
                                                                  ("RDNS_NONE", 1.0)]
    assert fired_rules(b"Subject: nothing scored\r\n\r\n") == []


def test_the_cli_searches(tmp_path):
    wanted = hold(tmp_path, sender="news@example.net", subject="Weekly news")
    other = hold(tmp_path, sender="eve@example.org", subject="Other")
    runner = CliRunner()
    found = runner.invoke(main, ["--data", str(tmp_path), "quarantine", "list", "--sender",
                                 "NEWS@example", "--kind", "spam"])
    assert found.exit_code == 0, found.output
    assert wanted in found.output and other not in found.output and "12.5" in found.output
    none = runner.invoke(main, ["--data", str(tmp_path), "quarantine", "list", "--subject", "zzz"])
    assert none.exit_code == 0 and "No message matches" in none.output
    bad = runner.invoke(main, ["--data", str(tmp_path), "quarantine", "list", "--since", "May 1"])
    assert bad.exit_code != 0 and "not a date" in bad.output


def test_an_envelope_of_the_wrong_shape_is_left_out(tmp_path):
    good = hold(tmp_path)
    quarantine = Quarantine(tmp_path)
    for name, envelope in (("BADTYPES", b'{"id":"X","sender":"a","recipients":[],"received":"soon"}'),
                           ("BADLIST", b'{"id":"Y","sender":"a","recipients":7,"received":1}')):
        (quarantine.spool.dir("hold") / name).write_bytes(
            b"GATEBOX-QUEUE 1\n" + envelope + b"\nSubject: x\r\n\r\n")
    assert [r.id for r in quarantine.search().rows] == [good]
