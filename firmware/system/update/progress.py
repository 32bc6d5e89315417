"""Where a running installation reports how far it is: a small JSON file
on the data partition, so whichever web worker a poll reaches can answer."""

from __future__ import annotations

import json
import re
import time

from firmware.system.durable import make_directories, write_json_atomically

from .runtime import Runtime

# `rauc install` prints lines like " 40% Checking bundle done."
PROGRESS_LINE = re.compile(r"^\s*(\d{1,3})%\s+(.*?)\s*$")


def parse_line(line: str) -> tuple[int, str] | None:
    match = PROGRESS_LINE.match(line)
    return (int(match.group(1)), match.group(2)) if match else None


def report(runtime: Runtime, state: str, percent: int, message: str, **extra) -> None:
    make_directories(runtime.progress_file.parent)
    write_json_atomically(runtime.progress_file, {"state": state, "percent": percent,
                                                  "message": message, "time": time.time(), **extra})


def read(runtime: Runtime) -> dict:
    try:
        return json.loads(runtime.progress_file.read_text())
    except (OSError, ValueError):
        return {"state": "idle", "percent": 0, "message": ""}
