"""Several smtpd processes on one listening socket: the connection caps and
the duplicate filter see every process's sessions, a worker that dies is
started again, and a kill -9 of the box takes all of them down."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
from pathlib import Path

import pytest

from tests.support.box import Box, child_pids, is_running, wait_reloaded
from tests.support.net import wait_until

PER_HOST = 4


def _worker_pids(box: Box) -> list[int]:
    return [pid for pid in child_pids(box.process.pid)
            if b"smtpd-worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _server_side_inode(client: socket.socket) -> str:
    """The inode of the box's end of this client's connection."""
    local_ip, local_port = client.getsockname()
    wanted = f"{socket.inet_aton(local_ip)[::-1].hex().upper()}:{local_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == wanted and fields[3] == "01":  # remote end is the client; ESTABLISHED
            return fields[9]
    raise AssertionError(f"no server side for {local_ip}:{local_port}")


def _owner(box: Box, client: socket.socket, pids: list[int]) -> int:
    inode = _server_side_inode(client)
    owners = [pid for pid in pids if inode in _socket_inodes(pid)]
    assert len(owners) == 1, (inode, owners)
    return owners[0]


def _connect(box: Box) -> tuple[socket.socket, bytes]:
    client = socket.create_connection((box.host, box.smtp_port), timeout=10)
    banner = client.recv(512)
    return client, banner


@pytest.fixture
def box(tmp_path):
    box = Box(tmp_path / "box", settings={"email.max_connections_per_host": str(PER_HOST),
                                          "email.check_duplicate_messages": "on"},
              smtpd_processes=2)
    box.start()
    wait_until(lambda: len(_worker_pids(box)) == 1, 30, 0.05, "the second smtpd process")
    wait_reloaded(box)  # the worker is up and serving once it has read the settings
    yield box
    box.stop()


def _held_on_both(box: Box, count: int, attempts: int = 30):
    """`count` open sessions, at least one in each smtpd process. The kernel
    picks the process; sessions are opened again until both have some."""
    pids = [box.process.pid, *_worker_pids(box)]
    for _ in range(attempts):
        held = []
        for _ in range(count):
            client, banner = _connect(box)
            assert banner.startswith(b"220"), banner
            held.append((client, _owner(box, client, pids)))
        if len({owner for _client, owner in held}) == 2:
            return held
        for client, _owner_pid in held:
            client.close()
        wait_until(lambda: _open_sessions(box) == 0, 10, 0.05, "the sessions to close")
    raise AssertionError(f"in {attempts} tries, every session went to one process")


def _open_sessions(box: Box) -> int:
    log = box.log()
    return log.count(": connect from") - log.count(": disconnect from")


def test_the_per_host_cap_counts_the_sessions_of_both_processes(box):
    held = _held_on_both(box, PER_HOST)
    owners = [owner for _client, owner in held]
    # Neither process holds the cap's worth alone: only a shared count refuses the next.
    assert max(owners.count(pid) for pid in set(owners)) < PER_HOST
    for _ in range(4):
        client, banner = _connect(box)
        client.close()
        assert banner.startswith(b"421"), banner
        assert b"Too many connections from 127.0.0.1" in banner
    held[0][0].close()
    wait_until(lambda: _open_sessions(box) == PER_HOST - 1, 10, 0.05, "one session to close")
    client, banner = _connect(box)
    client.close()
    assert banner.startswith(b"220"), banner
    for client, _owner_pid in held[1:]:
        client.close()


def _send(client: socket.socket, message: bytes) -> bytes:
    """One transaction on an open session; the final reply."""
    replies = []
    reader = client.makefile("rb")
    for line in (b"EHLO client.test", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.com>",
                 b"DATA"):
        client.sendall(line + b"\r\n")
        while True:
            reply = reader.readline()
            if reply[3:4] != b"-":
                break
        replies.append(reply)
    client.sendall(message + b"\r\n.\r\nQUIT\r\n")
    final = reader.readline()
    assert all(r[:1] in (b"2", b"3") for r in replies), replies
    return final


def test_a_resend_to_the_other_process_is_not_queued_twice(box):
    (first, first_owner), (second, second_owner) = _held_on_both(box, 2)
    assert first_owner != second_owner
    message = (b"From: a@example.org\r\nTo: b@example.com\r\nMessage-ID: <resend@example.org>\r\n"
               b"Subject: once\r\n\r\nthe client timed out and sent it again\r\n")
    one = _send(first, message)
    two = _send(second, message)
    assert one.startswith(b"250") and two.startswith(b"250"), (one, two)
    assert one.split()[-1] == two.split()[-1], (one, two)  # the same queue id
    assert "duplicate of" in box.log()
    first.close()
    second.close()


def test_a_worker_that_dies_is_started_again_with_its_sessions_forgotten(box):
    pids = [box.process.pid, *_worker_pids(box)]
    worker = pids[1]
    held = _held_on_both(box, PER_HOST)
    on_worker = [client for client, owner in held if owner == worker]
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: "smtpd process 1 exited with status -9; restarting" in box.log(),
               10, 0.05, "the box to see its worker die")
    wait_until(lambda: _worker_pids(box) and _worker_pids(box)[0] != worker, 30, 0.05,
               "a new worker")
    new = _worker_pids(box)[0]
    # It has taken its part of the shared memory once it reads the settings.
    wait_until(lambda: f"pid {new})" in box.log(), 30, 0.05, "the new worker to start")
    # The dead worker's sessions no longer count against the cap.
    for _ in on_worker:
        client, banner = _connect(box)
        assert banner.startswith(b"220"), banner
        held.append((client, None))
    client, banner = _connect(box)
    client.close()
    assert banner.startswith(b"421"), banner
    for client, _owner_pid in held:
        client.close()

    def answers() -> bool:
        # The processes see the closes when their loops next run: until then
        # the sessions still count, and a client is told 421.
        try:
            with smtplib.SMTP(box.host, box.smtp_port, timeout=10) as smtp:
                return smtp.noop()[0] == 250
        except smtplib.SMTPConnectError:
            return False
    wait_until(answers, 10, 0.05, "the closed sessions to be let go")


def test_kill_9_of_the_box_takes_every_smtpd_process_down(box):
    workers = _worker_pids(box)
    assert workers
    box.kill9()
    assert not any(is_running(pid) for pid in workers)
