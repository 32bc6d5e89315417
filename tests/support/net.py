"""Loopback helpers shared by the integration tests."""

from __future__ import annotations

import socket
import ssl
import time


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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
