"""The digest's service in `gatebox run`: each minute it looks whether the
day's digest is due (Send Quarantine Digest on, the Digest Time passed in
the box's time zone, not yet sent today), and hourly it deletes the spam
that outlived Keep Quarantined Spam and forgets used links that expired.

The day a digest went out is recorded (antispam_digest_runs), so a restart
never sends the same day's twice; each digest lists the spam held since
the previous one started."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
import zoneinfo

from firmware.config import Store, transaction
from firmware.mail.quarantine import Quarantine

from . import digest_mail, tokens
from .settings import DIGEST, DIGEST_TIME, QUARANTINE_DAYS

TICK_SECONDS = 60.0
EXPIRE_SECONDS = 3600.0

log = logging.getLogger("gatebox.antispam")


def local_now(settings, now: float | None = None) -> datetime.datetime:
    try:
        zone = zoneinfo.ZoneInfo(settings["system.timezone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = datetime.timezone.utc
    return datetime.datetime.fromtimestamp(time.time() if now is None else now, zone)


def due(store, settings, now: float | None = None) -> str | None:
    """The day (YYYY-MM-DD, local) whose digest is due now, or None."""
    if not settings[DIGEST]:
        return None
    moment = local_now(settings, now)
    hour, minute = (int(part) for part in settings[DIGEST_TIME].split(":"))
    if (moment.hour, moment.minute) < (hour, minute):
        return None
    day = moment.date().isoformat()
    sent = store.db.execute("SELECT 1 FROM antispam_digest_runs WHERE day = ?", [day]).fetchone()
    return None if sent else day


def send_now(store, day: str | None = None, now: float | None = None) -> tuple[int, int]:
    """Send a digest of what was held since the last one started; recorded
    under `day` (the due day, or today's when sent by hand)."""
    now = time.time() if now is None else now
    day = day or local_now(store.snapshot(), now).date().isoformat()
    row = store.db.execute("SELECT MAX(started) FROM antispam_digest_runs").fetchone()
    since = row[0] if row and row[0] is not None else None
    mails, listed = digest_mail.send(store, since)
    with transaction(store.db):
        store.db.execute("INSERT OR REPLACE INTO antispam_digest_runs(day, started, finished, "
                         "sent, since) VALUES (?, ?, ?, ?, ?)", [day, now, time.time(), mails, since])
    return mails, listed


def expire_spam(store, now: float | None = None) -> int:
    gone = Quarantine(store.data_dir).expire(store.get(QUARANTINE_DAYS), now, kinds=("spam",))
    tokens.prune(store, now)
    return gone


def _tick(data_dir, expire: bool):
    # A connection of its own: this runs in a worker thread.
    store = Store(data_dir)
    try:
        if expire:
            expire_spam(store)
        day = due(store, store.snapshot())
        if day is not None:
            send_now(store, day)
    finally:
        store.close()


async def keep_sending(data_dir, tick_seconds: float = TICK_SECONDS):
    last_expiry = 0.0
    while True:
        expire = time.monotonic() - last_expiry >= EXPIRE_SECONDS
        try:
            await asyncio.to_thread(_tick, data_dir, expire)
        except Exception:  # a digest problem must never end `gatebox run`
            log.exception("antispam: quarantine digest or spam expiry failed")
        if expire:
            last_expiry = time.monotonic()
        await asyncio.sleep(tick_seconds)


class DigestService:
    """Its name carries the digest's switch and time: services are compared
    by name, so a change of either starts it again, and the new one looks
    at once whether the digest is due."""

    def __init__(self, data_dir, settings):
        self.data_dir = data_dir
        self.name = (f"antispam quarantine digest at {settings[DIGEST_TIME]}" if settings[DIGEST]
                     else "antispam quarantine spam expiry")
        self._task: asyncio.Task | None = None

    async def start(self):
        self._task = asyncio.get_running_loop().create_task(keep_sending(self.data_dir))

    async def stop(self):
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def services(store, options) -> list:
    return [DigestService(options["data_dir"], store.snapshot())]
