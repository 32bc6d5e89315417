"""Delivery and the group commit's fsync threads run as background work
(SCHED_BATCH), smtpd's event loop does not: on two cores they preempted the
loop answering clients (firmware/background_work.py). Read from a running
box's /proc, thread by thread."""

import os
import smtplib
from pathlib import Path

from firmware.mail.queue import Committer
from tests.support.box import child_pids
from tests.support.net import wait_until


def policies(pid: int) -> dict[int, int]:
    """Thread id -> scheduling policy, for every thread of PID still there."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found[int(task.name)] = os.sched_getscheduler(int(task.name))
        except ProcessLookupError:
            continue
    return found


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_delivery_and_commit_threads_yield_to_the_smtp_event_loop(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address,
                      "email.trusted_networks": "127.0.0.1/32"}).start()
    # The commit threads start with the first message the spool takes.
    with smtplib.SMTP(box.host, box.smtp_port, timeout=20) as client:
        client.sendmail("alice@internet.test", ["bob@example.com"], b"Subject: hi\r\n\r\nhello\r\n")
    wait_until(lambda: sink.count() == 1, what="delivery to smtp-sink")

    smtpd = box.process.pid
    assert os.sched_getscheduler(smtpd) == os.SCHED_OTHER
    # Python's thread names stay inside Python; the policies tell the threads apart.
    smtpd_threads = policies(smtpd)
    background = [tid for tid, policy in smtpd_threads.items() if policy == os.SCHED_BATCH]
    assert len(background) == Committer.THREADS, smtpd_threads

    qmgr = [pid for pid in child_pids(smtpd) if "qmgr" in command_line(pid)]
    assert len(qmgr) == 1, [command_line(pid) for pid in child_pids(smtpd)]
    qmgr_threads = policies(qmgr[0])
    assert len(qmgr_threads) > 1, qmgr_threads
    assert set(qmgr_threads.values()) == {os.SCHED_BATCH}
