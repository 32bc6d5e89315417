"""What each long-running part of the box is doing, for the web admin's
dashboard and the health check: a small JSON file per service in
DATA/status, written by the service itself."""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import durable

MAIL = "mail"
STARTING, RUNNING, FAILED, STOPPED = "starting", "running", "failed", "stopped"


def state_file(data_dir, name: str) -> Path:
    return Path(data_dir) / "status" / f"{name}.json"


def record(data_dir, name: str, state: str, error: str = "", attempts: int = 0,
           listening: dict | None = None) -> None:
    """listening: where a running service accepts connections ({"bind": address,
    "smtp": port}), for the pages that talk to it as a client would (the EICAR test)."""
    path = state_file(data_dir, name)
    durable.make_directories(path.parent)
    value = {"state": state, "error": error, "attempts": attempts, "time": time.time()}
    if listening:
        value["listening"] = listening
    durable.write_json_atomically(path, value)


def read(data_dir, name: str) -> dict:
    try:
        value = json.loads(state_file(data_dir, name).read_text())
    except (OSError, ValueError):
        return {"state": "unknown", "error": "", "attempts": 0}
    return value if isinstance(value, dict) else {"state": "unknown", "error": "", "attempts": 0}
