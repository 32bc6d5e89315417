"""Email Diagnostics runs started from the web admin. Each run is a job: a
thread that works through the checks and rewrites DATA/diagnostics/<id>.json
as each result arrives, so that any request (any gunicorn thread, or a worker
started later) can show how far it has come."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from pathlib import Path

from firmware.mail import diagnostics
from firmware.system import durable

DIRECTORY = "diagnostics"
KEPT_JOBS = 20
RUNNING = "running"
DONE = "done"
_JOB_ID = re.compile(r"[0-9a-f]{16}")


def _directory(data_dir) -> Path:
    return Path(data_dir) / DIRECTORY


def _path(data_dir, job_id: str) -> Path:
    return _directory(data_dir) / f"{job_id}.json"


def start(context: diagnostics.Context) -> str:
    """Starts the checks for the box's server type; returns the job's id."""
    checks = diagnostics.plan(context)
    job_id = secrets.token_hex(8)
    job = {"job": job_id, "state": RUNNING, "started": time.time(),
           "server_type": context["email.server_type"], "public_address": context.public_address,
           "checks": [{"name": c.name, "title": c.title, "status": RUNNING, "reason": "",
                       "fix": "", "seconds": None} for c in checks]}
    durable.make_directories(_directory(context.data_dir), mode=0o700)
    _write(context.data_dir, job)
    _prune(context.data_dir)
    threading.Thread(target=_work, args=(context, checks, job), name=f"diagnostics-{job_id}",
                     daemon=True).start()
    return job_id


def read(data_dir, job_id: str) -> dict | None:
    if not _JOB_ID.fullmatch(job_id or ""):
        return None
    try:
        return json.loads(_path(data_dir, job_id).read_text())
    except (OSError, ValueError):
        return None


def _work(context, checks, job):
    position = {check["name"]: index for index, check in enumerate(job["checks"])}
    for result in diagnostics.run(checks, context):
        job["checks"][position[result.name]] = result.as_dict()
        _write(context.data_dir, job)
    job["state"] = DONE
    job["finished"] = time.time()
    _write(context.data_dir, job)


def _write(data_dir, job):
    durable.write_atomically(_path(data_dir, job["job"]), json.dumps(job), 0o600)


def _prune(data_dir):
    jobs = []
    for path in _directory(data_dir).glob("*.json"):
        try:
            jobs.append((path.stat().st_mtime, path))
        except FileNotFoundError:
            continue  # another request's prune was first
    for _mtime, old in sorted(jobs, reverse=True)[KEPT_JOBS:]:
        old.unlink(missing_ok=True)
