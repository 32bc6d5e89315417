"""Delivery and the group commit's process run as background work
(SCHED_BATCH), smtpd's event loop does not: on two cores they preempted the
loop answering clients (firmware/background_work.py). Read from a running
box's /proc, thread by thread."""

import os
import smtplib
from pathlib import Path

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


def test_delivery_and_the_commit_process_yield_to_the_smtp_event_loop(make_box, sink):
    box = make_box(**{"email.mail_server_address": sink.address,
                      "email.trusted_networks": "127.0.0.1/32"}).start()
    # The commit process starts with the first message the spool takes.
    with smtplib.SMTP(box.host, box.smtp_port, timeout=20) as client:
        client.sendmail("alice@internet.test", ["bob@example.com"], b"Subject: hi\r\n\r\nhello\r\n")
    wait_until(lambda: sink.count() == 1, what="delivery to smtp-sink")

    smtpd = box.process.pid
    assert set(policies(smtpd).values()) == {os.SCHED_OTHER}
    committer = [pid for pid in child_pids(smtpd) if "firmware.mail.commit_worker" in command_line(pid)]
    assert len(committer) == 1, [command_line(pid) for pid in child_pids(smtpd)]
    assert set(policies(committer[0]).values()) == {os.SCHED_BATCH}

    qmgr = [pid for pid in child_pids(smtpd) if "qmgr" in command_line(pid)]
    assert len(qmgr) == 1, [command_line(pid) for pid in child_pids(smtpd)]
    qmgr_threads = policies(qmgr[0])
    assert len(qmgr_threads) > 1, qmgr_threads
    assert set(qmgr_threads.values()) == {os.SCHED_BATCH}
