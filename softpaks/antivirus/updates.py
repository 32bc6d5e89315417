"""Signature updates with Debian's freshclam: online from ClamAV's mirrors,
or from a mirror on the LAN (as cvdupdate serves one), on the
antivirus.update_hours schedule and never more than once an hour.

freshclam runs with a configuration of ours (DATA/antivirus/freshclam.conf:
our signature directory, no system paths). When ClamAV's CDN refuses a box
(HTTP 429 or 403) freshclam records a retry-after time in its freshclam.dat
and prints "cool-down until after: ..."; the box then makes no request at all
until that time has passed, and says why. The outcome of every run is kept in
DATA/antivirus/state/updates.json for the page and the CLI.

In offline mode nothing here reaches out: signatures come as files only."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import fcntl
import json
import logging
import os
import pwd
import re
import struct
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from firmware.system import durable

from . import paths
from .license import is_licensed
from .settings import (ENABLED, MIRROR, MIRROR_URL, OFFLINE, ONLINE, UPDATE_HOURS,
                       UPDATE_SOURCE)
from .signatures import reload_clamd

log = logging.getLogger("gatebox.antivirus")

UTC = datetime.timezone.utc
NEVER = datetime.datetime(2000, 1, 1, tzinfo=UTC)
MIN_INTERVAL = datetime.timedelta(hours=1)
# A refused box whose freshclam.dat went missing still waits this long.
DEFAULT_COOLDOWN = datetime.timedelta(hours=1)
FRESHCLAM_SECONDS = 30 * 60
CHECK_SECONDS = 60
ONLINE_MIRROR = "database.clamav.net"
OUTPUT_KEPT = 4000

UPDATED, UP_TO_DATE, FAILED, COOLDOWN = "updated", "up to date", "failed", "cool-down"

COOLDOWN_LINE = re.compile(r"cool-down until after: (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})")
REFUSAL = re.compile(r"error code (429|403)|rate limited|cool-down", re.I)
# What a mirror URL may hold: it goes into freshclam's configuration, one
# option per line, so nothing that could start another line or option.
MIRROR_URL_SYNTAX = re.compile(r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/\-]*)?")

# freshclam.dat (libfreshclam): "FreshClamData", then a struct of uint32
# version (1), char uuid[37] and, 8-byte aligned, time_t retry_after.
DAT_MAGIC = b"FreshClamData"
DAT_RETRY_AFTER = len(DAT_MAGIC) + 48


class UpdateRefused(Exception):
    """An update not run now, with the reason for the administrator."""


@dataclasses.dataclass
class UpdateState:
    last_run: str = ""            # ISO time, UTC
    result: str = ""              # UPDATED | UP_TO_DATE | FAILED | COOLDOWN
    message: str = ""
    cooldown_until: str = ""      # ISO time, UTC; no request before it
    source: str = ""
    output: str = ""

    def last_run_time(self) -> datetime.datetime | None:
        return _parse_time(self.last_run)

    def cooldown_time(self) -> datetime.datetime | None:
        return _parse_time(self.cooldown_until)

    def cooling_down(self, now: datetime.datetime | None = None) -> bool:
        until = self.cooldown_time()
        return until is not None and (now or _now()) < until


# ---- files -----------------------------------------------------------------------
def config_path(data_dir) -> Path:
    return paths.antivirus_dir(data_dir) / "freshclam.conf"


def state_path(data_dir) -> Path:
    return paths.state_dir(data_dir) / "updates.json"


def read_state(data_dir) -> UpdateState:
    try:
        raw = json.loads(state_path(data_dir).read_text())
    except (OSError, ValueError):
        return UpdateState()
    known = {f.name for f in dataclasses.fields(UpdateState)}
    return UpdateState(**{k: str(v) for k, v in raw.items() if k in known})


def _write_state(data_dir, state: UpdateState) -> None:
    durable.make_directories(paths.state_dir(data_dir), 0o700)
    durable.write_json_atomically(state_path(data_dir), dataclasses.asdict(state), 0o600)


def check_mirror_url(url: str) -> str:
    url = url.strip()
    if not MIRROR_URL_SYNTAX.fullmatch(url) or not urlsplit(url).hostname:
        raise UpdateRefused("the LAN mirror URL must look like http://mirror.lan[:port][/path] "
                            "(Anti-Virus > Signatures > LAN Mirror URL)")
    return url.rstrip("/")


def write_config(data_dir, source: str, mirror_url: str = "") -> Path:
    """freshclam.conf for this data directory. freshclam keeps its own
    freshclam.dat (the cool-down) beside the signatures."""
    db_dir = durable.make_directories(paths.db_dir(data_dir), 0o755)
    lines = [
        f"DatabaseDirectory {db_dir}",
        # freshclam switches to this user when started as root; as the
        # service user it stays itself.
        f"DatabaseOwner {pwd.getpwuid(os.geteuid()).pw_name}",
        "Foreground yes",
        "LogTime no",
        "LogSyslog no",
        "Bytecode yes",
        # Testing a new database loads it a second time beside clamd's copy:
        # on a box of 1-2 GB that is what the OOM killer would take. clamd's
        # own reload (ConcurrentDatabaseReload no) loads it once.
        "TestDatabases no",
        "ConnectTimeout 30",
        "ReceiveTimeout 300",
        # One attempt per run: the schedule is the retry.
        "MaxAttempts 1",
    ]
    if source == MIRROR:
        lines += [f"PrivateMirror {check_mirror_url(mirror_url)}",
                  # The LAN mirror answers version checks itself; no DNS on the Internet.
                  "DNSDatabaseInfo no",
                  "ScriptedUpdates yes"]
    else:
        lines += [f"DatabaseMirror {ONLINE_MIRROR}",
                  "DNSDatabaseInfo current.cvd.clamav.net",
                  "ScriptedUpdates yes"]
    path = config_path(data_dir)
    durable.write_atomically(path, "\n".join(lines) + "\n", 0o600)
    return path


def cooldown_from_dat(data_dir) -> datetime.datetime | None:
    """freshclam's own record of a refusal: its retry-after time, if any."""
    try:
        raw = (paths.db_dir(data_dir) / "freshclam.dat").read_bytes()[:256]
    except OSError:
        return None
    if not raw.startswith(DAT_MAGIC) or len(raw) < DAT_RETRY_AFTER + 8:
        return None
    (version,) = struct.unpack_from("<I", raw, len(DAT_MAGIC))
    (retry_after,) = struct.unpack_from("<q", raw, DAT_RETRY_AFTER)
    if version != 1 or retry_after <= 0:
        return None
    try:
        return datetime.datetime.fromtimestamp(retry_after, UTC)
    except (OverflowError, OSError, ValueError):
        return None


# ---- when ------------------------------------------------------------------------
def next_due(state: UpdateState, hours: int) -> datetime.datetime:
    """The scheduled time of the next check: update_hours after the last run
    (at least an hour), and never inside a cool-down."""
    last = state.last_run_time()
    # Never run: due at once (any time in the past will do).
    due = (last + max(MIN_INTERVAL, datetime.timedelta(hours=hours))) if last else NEVER
    until = state.cooldown_time()
    return max(due, until) if until else due


def _settings(store) -> tuple[str, str, int]:
    return (store.get(UPDATE_SOURCE) or ONLINE, store.get(MIRROR_URL) or "",
            int(store.get(UPDATE_HOURS) or 4))


# ---- running freshclam -------------------------------------------------------------
def update_now(data_dir, store) -> UpdateState:
    """The page's and the CLI's Update Now. Raises UpdateRefused when it must
    not reach out now (offline mode, a cool-down, the hourly limit online)."""
    source, mirror_url, _ = _settings(store)
    state = read_state(data_dir)
    if source == OFFLINE:
        raise UpdateRefused("Signature Updates is set to Offline: import signature files by "
                            "upload or USB stick, or choose Online or a LAN mirror")
    _refuse_during_cooldown(data_dir, state)
    last = state.last_run_time()
    if source == ONLINE and last and _now() - last < MIN_INTERVAL:
        raise UpdateRefused(f"ClamAV's mirrors allow one check an hour; the last was at "
                            f"{_shown_time(last)}: try again after {_shown_time(last + MIN_INTERVAL)}")
    return run_update(data_dir, source, mirror_url)


def _refuse_during_cooldown(data_dir, state: UpdateState) -> None:
    until = max(filter(None, [state.cooldown_time(), cooldown_from_dat(data_dir)]), default=None)
    if until and _now() < until:
        raise UpdateRefused(f"the signature mirrors refused this box (rate limit); it waits "
                            f"as asked and makes no request until {_shown_time(until)}")


def run_update(data_dir, source: str, mirror_url: str = "") -> UpdateState:
    """One freshclam run, one at a time per data directory; the outcome is
    recorded. Asks clamd to reload when signatures changed."""
    if source == OFFLINE:
        raise UpdateRefused("offline: no updates are fetched")
    _refuse_during_cooldown(data_dir, read_state(data_dir))
    try:
        config = write_config(data_dir, source, mirror_url)
    except UpdateRefused as refused:
        # Recorded as a run, so the schedule waits before trying again.
        _write_state(data_dir, UpdateState(last_run=_now().isoformat(timespec="seconds"),
                                           result=FAILED, message=str(refused), source=source))
        raise
    lock_path = paths.state_dir(data_dir) / "update.lock"
    durable.make_directories(lock_path.parent, 0o700)
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpdateRefused("an update is already running") from None
        before = _fingerprint(data_dir)
        started = _now()
        output, returncode = _freshclam(config)
        state = _outcome(data_dir, source, started, output, returncode, before)
        _write_state(data_dir, state)
    if state.result == UPDATED:
        state.message += "; " + reload_clamd(data_dir)
        _write_state(data_dir, state)
    log.info("antivirus: signature update: %s: %s", state.result, state.message)
    return state


def _freshclam(config: Path) -> tuple[str, int]:
    try:
        done = subprocess.run(["freshclam", f"--config-file={config}", "--stdout"],
                              capture_output=True, text=True, errors="replace",
                              timeout=FRESHCLAM_SECONDS, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return "freshclam is not installed on this box", 127
    except subprocess.TimeoutExpired as expired:
        return (expired.stdout or "") + "\nfreshclam took too long and was stopped", 124
    return done.stdout + done.stderr, done.returncode


def _outcome(data_dir, source, started, output, returncode, before) -> UpdateState:
    state = UpdateState(last_run=started.isoformat(timespec="seconds"), source=source,
                        output=output[-OUTPUT_KEPT:])
    until = _cooldown_in_output(output) or cooldown_from_dat(data_dir)
    if until and until > started:
        state.result, state.cooldown_until = COOLDOWN, until.isoformat(timespec="seconds")
        state.message = (f"the signature mirrors refused this box (rate limit, HTTP 429/403); "
                         f"no request until {_shown_time(until)}")
    elif REFUSAL.search(output):
        until = started + DEFAULT_COOLDOWN
        state.result, state.cooldown_until = COOLDOWN, until.isoformat(timespec="seconds")
        state.message = f"the signature mirrors refused this box; no request until {_shown_time(until)}"
    elif returncode in (0, 1) and "ERROR" not in output:
        changed = _fingerprint(data_dir) != before
        state.result = UPDATED if changed else UP_TO_DATE
        state.message = "new signatures installed" if changed else "the signatures are up to date"
    else:
        state.result = FAILED
        state.message = _first_error(output) or f"freshclam ended with status {returncode}"
    return state


def _cooldown_in_output(output: str) -> datetime.datetime | None:
    match = COOLDOWN_LINE.search(output)
    if not match:
        return None
    # freshclam prints the box's local time.
    local = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
    return local.astimezone(UTC)


def _first_error(output: str) -> str:
    errors = [line.split("ERROR:", 1)[1].strip() for line in output.splitlines() if "ERROR:" in line]
    # The first is the cause; the rest are freshclam giving up.
    return errors[0][:300] if errors else ""


def _fingerprint(data_dir) -> list[tuple]:
    found = []
    for path in paths.signature_files(paths.db_dir(data_dir)):
        info = path.stat()
        found.append((path.name, info.st_size, info.st_mtime_ns))
    return found


# ---- in `gatebox run` ----------------------------------------------------------------
async def keep_updated(store, data_dir, check_seconds: float = CHECK_SECONDS) -> None:
    """Runs while UpdatesService does: checks each minute whether an update
    is due (licensed, scanning on, not offline, the schedule, no cool-down)
    and runs freshclam in a worker thread so the mail is never held up."""
    while True:
        try:
            if is_licensed(store) and store.get(ENABLED):
                source, mirror_url, hours = _settings(store)
                state = read_state(data_dir)
                if source != OFFLINE and _now() >= next_due(state, hours) \
                        and not _dat_cooldown_active(data_dir) \
                        and (source != MIRROR or mirror_url):
                    await asyncio.to_thread(run_update, data_dir, source, mirror_url)
        except UpdateRefused as refused:
            log.info("antivirus: signature update not run: %s", refused)
        except Exception:  # an update problem must never end `gatebox run`
            log.exception("antivirus: signature update failed")
        await asyncio.sleep(check_seconds)


class UpdatesService:
    """keep_updated as one of the SoftPak's services in `gatebox run`."""
    name = "antivirus signature updates"

    def __init__(self, store, data_dir):
        self.store, self.data_dir = store, data_dir
        self._task: asyncio.Task | None = None

    async def start(self):
        self._task = asyncio.get_running_loop().create_task(
            keep_updated(self.store, self.data_dir))

    async def stop(self):
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def _dat_cooldown_active(data_dir) -> bool:
    until = cooldown_from_dat(data_dir)
    return until is not None and _now() < until


# ---- helpers ---------------------------------------------------------------------
def _now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def _parse_time(text: str) -> datetime.datetime | None:
    try:
        value = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _shown_time(value: datetime.datetime) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M %Z")
