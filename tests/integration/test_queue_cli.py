"""`gatebox queue`: the operations of "Managing the Email Server Queue" on
real queued mail (the LAN server is down, so mail waits)."""

import smtplib

import pytest

from tests.support.net import free_port, wait_until


@pytest.fixture
def box(make_box):
    # Nothing listens on the Mail Server Address yet, and retries are slow, so
    # mail stays deferred until the test moves it.
    box = make_box(**{"email.mail_server_address": f"127.0.0.1:{free_port()}",
                      "email.retry_minimum_seconds": "3600",
                      "email.retry_maximum_seconds": "3600"}).start()
    return box


def queue_three(box):
    for number, sender in enumerate(["carol@example.com", "alice@example.com", "bob@example.com"]):
        with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as client:
            client.sendmail(sender, ["staff@example.com"],
                            f"From: {sender}\r\nSubject: queued {number}\r\n\r\nbody {number}\r\n")
    return wait_until(lambda: len(box.queue_ids("deferred")) == 3 and box.queue_ids("deferred"),
                      what="three deferred messages")


def test_list_sorts_and_shows_why_mail_waits(box):
    ids = queue_three(box)
    by_id = box.cli("queue", "list", "--sort", "id").stdout
    assert [line.split()[0] for line in by_id.splitlines() if line[:1].isalnum()][1:] == sorted(ids)
    by_from = box.cli("queue", "list", "--sort", "from").stdout
    senders = [line.split("<")[1].split(">")[0] for line in by_from.splitlines() if "->" in line and "<" in line]
    assert senders == ["alice@example.com", "bob@example.com", "carol@example.com"]
    assert "Connection refused" in by_id
    shown = box.cli("queue", "show", ids[0]).stdout
    assert "Subject: queued" in shown and "Recipient: <staff@example.com> pending" in shown


def test_hold_release_delete_purge_flush(box, sink):
    ids = queue_three(box)
    held, bounced, kept = ids
    box.cli("queue", "hold", held)
    assert box.queue_ids("hold") == [held]
    # The LAN server comes back; flush retries deferred mail but not held mail.
    box.configure(**{"email.mail_server_address": sink.address})
    box.cli("queue", "delete", "--bounce", bounced)
    flushed = box.cli("queue", "flush").stdout
    assert "scheduled for immediate delivery" in flushed
    wait_until(lambda: sink.count() == 2, what="the kept message and the bounce")
    contents = b"\n".join(sink.messages())
    assert b"Subject: queued 2" in contents
    assert b"deleted from the queue by the administrator" in contents
    assert b"Subject: queued 1" not in contents.split(b"Content-Type: text/rfc822-headers")[0]
    assert box.queue_ids("hold") == [held]
    box.cli("queue", "release", held)
    wait_until(lambda: sink.count() == 3, what="the released message")
    assert not box.queue_ids("hold")


def test_purge_and_bad_ids(box):
    queue_three(box)
    missing = box.cli("queue", "hold", "NOSUCHID", check=False)
    assert missing.returncode == 1
    assert "NOSUCHID: no such message in the queue" in missing.stderr
    release = box.cli("queue", "release", box.queue_ids("deferred")[0], check=False)
    assert release.returncode == 1 and "is not held" in release.stderr
    assert "purged 3 message(s)" in box.cli("queue", "purge", "--yes").stdout
    assert box.cli("queue", "list").stdout.strip() == "Mail queue is empty"
    audit = box.cli("config", "show").stdout  # the CLI still works on an empty queue
    assert "email.domain" in audit
