"""SMTP Mail-bagging: the ISP holds the domain's mail until it is asked with
a finger request (`finger domain@isp-host`, TCP port 79; RFC 1288), and then
delivers it by SMTP to the box's port 25 as with ETRN."""

from __future__ import annotations

import logging
import socket

from firmware.config.types import split_host_port
from firmware.mail.headers import safe_text

from . import AccountResult
from .state import record_account

ACCOUNT = "mailbag"
FINGER_PORT = 79
TIMEOUT_SECONDS = 60
MAX_REPLY = 64 * 1024     # a finger server may talk at length; the log keeps the start

log = logging.getLogger("gatebox.retrieval")


def query(host: str, port: int, name: str, timeout: float = TIMEOUT_SECONDS) -> str:
    """The server's whole reply to `name` (it closes the connection when done)."""
    if any(c in name for c in "\r\n\0"):
        raise ValueError("a finger query is one line")
    chunks, size = [], 0
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(name.encode("ascii", "replace") + b"\r\n")
        while size < MAX_REPLY:
            chunk = connection.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)[:MAX_REPLY].decode("utf-8", "replace")


def run(ctx) -> list[AccountResult]:
    settings = ctx.settings
    server = str(settings["email.isp_server"]).strip()
    domain = str(settings["email.domain"]).strip().lower()
    if not server:
        result = AccountResult(ACCOUNT, ok=False, detail="no ISP Mail Server is set")
    else:
        host, port = split_host_port(server, FINGER_PORT)
        try:
            reply = query(host, port, domain)
        except (OSError, ValueError) as error:
            result = AccountResult(ACCOUNT, ok=False,
                                   detail=f"finger {domain}@{server}: {safe_text(str(error), 200)}")
        else:
            shown = " / ".join(line.strip() for line in reply.splitlines() if line.strip())
            result = AccountResult(ACCOUNT, ok=True, detail=f"finger {domain}@{server}: "
                                   + (safe_text(shown, 300) or "(empty reply)"))
    (log.info if result.ok else log.warning)("%s", result.summary)
    record_account(ctx.store, result, ctx.now)
    return [result]
