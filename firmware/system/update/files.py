"""Small files that readers in other processes must never see half written."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomically(path: Path, value, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    with open(temporary, "w") as out:
        json.dump(value, out, indent=1)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(temporary, mode)
    os.replace(temporary, path)
