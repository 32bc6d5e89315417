"""The command inactivity timeout closes an idle session at the time of its
last command plus the duration, and a busy session keeps one timer rather
than scheduling a new one for every command."""

from __future__ import annotations

import smtplib
import socket
import time

import pytest

from firmware.mail import smtpd
from tests.support.gateway import InProcessGateway

# The setting is in whole minutes; the tests shorten it on the connection.
TIMEOUT = 0.6


class ShortTimeoutSMTP(smtpd.GateboxSMTP):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._timeout_duration = TIMEOUT


@pytest.fixture
def box(tmp_path, monkeypatch):
    monkeypatch.setattr(smtpd, "GateboxSMTP", ShortTimeoutSMTP)
    gateway = InProcessGateway(tmp_path / "box").start()
    yield gateway
    gateway.stop()


def seconds_until_closed(sock: socket.socket) -> float:
    started = time.monotonic()
    sock.settimeout(20)
    while sock.recv(4096):
        pass
    return time.monotonic() - started


def test_an_idle_session_is_closed_once_the_timeout_has_passed(box):
    with socket.create_connection((box.host, box.port), timeout=20) as sock:
        assert sock.recv(512).startswith(b"220 ")
        waited = seconds_until_closed(sock)
    assert TIMEOUT - 0.05 <= waited < TIMEOUT + 10


def test_commands_keep_a_session_open_and_the_timeout_counts_from_the_last(box):
    client = smtplib.SMTP(box.host, box.port, timeout=20)
    client.ehlo("client.example.com")
    started = time.monotonic()
    # Three timeouts' worth of commands, each well inside the timeout.
    while time.monotonic() - started < 3 * TIMEOUT:
        assert client.noop()[0] == 250
        time.sleep(TIMEOUT / 4)
    assert client.noop()[0] == 250
    waited = seconds_until_closed(client.sock)
    client.close()
    assert TIMEOUT - 0.05 <= waited < TIMEOUT + 10


def test_a_busy_session_schedules_no_timer_per_command(box):
    client = smtplib.SMTP(box.host, box.port, timeout=20)
    client.ehlo("client.example.com")
    scheduled = []
    call_at = box._loop.call_at

    def counting_call_at(when, callback, *args, **kwargs):
        scheduled.append(callback)
        return call_at(when, callback, *args, **kwargs)
    # call_later goes through call_at; an attribute of the loop object is
    # what every self.loop.call_at finds first.
    box.call(setattr, box._loop, "call_at", counting_call_at)
    try:
        for _ in range(60):
            assert client.noop()[0] == 250
    finally:
        box.call(delattr, box._loop, "call_at")
    client.quit()
    assert len(scheduled) <= 2
