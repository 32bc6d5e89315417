"""A burst of connections while smtpd's event loop is busy waits in the
kernel's accept queue and is then served; none is left half-open."""

from __future__ import annotations

import selectors
import socket
import threading
import time

import pytest

from firmware.mail import smtpd
from tests.support.gateway import InProcessGateway

# More than asyncio's default backlog of 100 lets complete while nothing accepts.
BURST = 200


@pytest.fixture
def box(tmp_path):
    gateway = InProcessGateway(tmp_path / "box", settings={
        "email.max_connections": "unlimited", "email.max_connections_per_host": "unlimited"}).start()
    yield gateway
    gateway.stop()


def connect_all(port: int, count: int, timeout: float) -> tuple[list[socket.socket], int]:
    """Non-blocking connects; (sockets, how many completed their handshake)."""
    sockets, pending = [], selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        sockets.append(sock)
        pending.register(sock, selectors.EVENT_WRITE)
    connected = 0
    deadline = time.monotonic() + timeout
    while pending.get_map() and time.monotonic() < deadline:
        for key, _ in pending.select(timeout=0.2):
            pending.unregister(key.fileobj)
            if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected += 1
    pending.close()
    return sockets, connected


def test_the_listen_backlog_holds_a_burst_larger_than_asyncios_default(box):
    assert smtpd.LISTEN_BACKLOG >= BURST
    busy = threading.Event()
    release = threading.Event()

    def hold_the_loop():
        busy.set()
        release.wait(30)
    box._loop.call_soon_threadsafe(hold_the_loop)
    assert busy.wait(10)
    sockets = []
    try:
        # Nothing accepts now: every handshake the kernel completes sits in
        # the accept queue; past the backlog the SYNs would be dropped.
        sockets, connected = connect_all(box.port, BURST, timeout=10)
        assert connected == BURST
    finally:
        release.set()
    try:
        for sock in sockets:
            sock.setblocking(True)
            sock.settimeout(20)
            assert sock.recv(512).startswith(b"220 ")
    finally:
        for sock in sockets:
            sock.close()
