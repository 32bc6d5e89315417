"""Loopback helpers shared by the integration tests."""

from __future__ import annotations

import random
import socket
import ssl
import time


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            low, high = (int(part) for part in ranges.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now and stays free until the caller binds it.

    A port the kernel picks with bind(0) comes from the ephemeral range, and
    the next outgoing connection (a client, the box's own delivery) can take
    it as its local port before the box under test binds it: the box then
    fails with "address already in use". Ports below the ephemeral range are
    never handed to outgoing connections, so only another listener can race
    for them, and a random pick makes that as unlikely as it gets.
    """
    low, _ = _ephemeral_range()
    candidates = range(10000, low) if low > 11000 else range(1024, max(1025, low))
    for _ in range(200):
        port = random.choice(candidates)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port below the ephemeral range on {host}")


def wait_for_banner(host: str, port: int, timeout: float = 20.0, accept=(b"220",)) -> bytes:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                banner = sock.recv(512)
                if banner.startswith(tuple(accept)):
                    return banner
        except OSError as error:
            last = error
        time.sleep(0.1)
    raise TimeoutError(f"no SMTP banner on {host}:{port}: {last}")


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def wait_for_https(host: str, port: int, timeout: float = 30.0):
    """Until a TLS handshake on host:port succeeds (any certificate)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                with context.wrap_socket(sock, server_hostname=host):
                    return
        except OSError as error:
            last = error
        time.sleep(0.1)
    raise TimeoutError(f"no HTTPS on {host}:{port}: {last}")
