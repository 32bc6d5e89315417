"""What the web admin shows of the scanner: clamd's state (running, not
running, no signatures, refused for lack of memory, off), the engine and
signature versions it reports, the memory figures, and the dashboard's
warnings (clamd down while scanning is on, signatures older than 3 days)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from . import memory, paths
from .clamd_client import Clamd, ScannerUnavailable, parse_version
from .settings import ENABLED, ON_FAILURE, TEMPFAIL

RUNNING, NOT_RUNNING, NO_SIGNATURES, NO_MEMORY, OFF = (
    "running", "not running", "no signatures", "refused for memory", "off")
STALE_AFTER = datetime.timedelta(days=3)
# The page and the dashboard must answer even when clamd hangs.
PING_SECONDS = 3.0


@dataclass(frozen=True)
class ScannerState:
    state: str            # RUNNING | NOT_RUNNING | NO_SIGNATURES | NO_MEMORY | OFF
    detail: str           # one sentence for the administrator
    enabled: bool
    engine: str = ""
    signature_version: int | None = None
    signature_date: datetime.datetime | None = None   # UTC

    @property
    def running(self) -> bool:
        return self.state == RUNNING


@dataclass(frozen=True)
class MemoryFigures:
    total: int
    available: int
    signatures_on_disk: int
    needed: int
    reserve: int
    ok: bool
    message: str

    def mb(self, count: int) -> str:
        return memory.megabytes(count)


def _failure_note(store) -> str:
    if store.get(ON_FAILURE) == TEMPFAIL:
        return "mail is rejected temporarily (451) until it runs, so nothing passes unscanned"
    return "mail is accepted unscanned, with a header saying so"


def scanner_state(store, clamd: Clamd | None = None) -> ScannerState:
    data_dir = store.data_dir
    enabled = bool(store.get(ENABLED))
    clamd = clamd or Clamd(paths.socket_path(data_dir), timeout=PING_SECONDS)
    try:
        engine, version, built = parse_version(clamd.version_sync())
    except ScannerUnavailable:
        pass
    else:
        detail = ("clamd answers and scans every message." if enabled else
                  "clamd answers, but Anti-Virus Scanner Active is off: nothing is scanned.")
        return ScannerState(RUNNING, detail, enabled, engine, version, built)
    db_dir = paths.db_dir(data_dir)
    if not paths.signature_files(db_dir):
        return ScannerState(NO_SIGNATURES, "clamd cannot start without signatures: import a "
                            "signature file or let the box update (Anti-Virus > Signatures).",
                            enabled)
    ok, message = memory.check(db_dir)
    if not ok:
        return ScannerState(NO_MEMORY, message, enabled)
    if not enabled:
        return ScannerState(OFF, "Anti-Virus Scanner Active is off: clamd is not started and "
                            "nothing is scanned.", enabled)
    return ScannerState(NOT_RUNNING, f"clamd does not answer; while it does not, "
                        f"{_failure_note(store)}.", enabled)


def memory_figures(store) -> MemoryFigures:
    db_dir = paths.db_dir(store.data_dir)
    ok, message = memory.check(db_dir)
    return MemoryFigures(memory.total_memory(), memory.available_memory(),
                         memory.signature_bytes(db_dir), memory.needed_memory(db_dir),
                         memory.MAIL_STACK_RESERVE_BYTES, ok, message)


def signatures_stale(date: datetime.datetime | None,
                     now: datetime.datetime | None = None) -> bool:
    """Older than 3 days. A database without a date (local signatures only)
    is not called stale: there is nothing to compare."""
    if date is None:
        return False
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now - date > STALE_AFTER


def age_text(date: datetime.datetime, now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    days = (now - date).days
    return f"{days} day{'s' if days != 1 else ''} old" if days >= 1 else "less than a day old"


def dashboard_notes(store, state: ScannerState | None = None) -> list[str]:
    """Warnings for the dashboard: clamd not scanning while scanning is on,
    and signatures older than 3 days."""
    state = state or scanner_state(store)
    notes = []
    if state.enabled and not state.running:
        notes.append(f"Anti-Virus: scanning is on, but clamd is not scanning ({state.state}): "
                     f"{state.detail}")
    if state.running and signatures_stale(state.signature_date):
        notes.append(f"Anti-Virus: the virus signatures are {age_text(state.signature_date)} "
                     f"(version {state.signature_version}): new viruses are not recognised. "
                     "See Anti-Virus > Signatures.")
    return notes
