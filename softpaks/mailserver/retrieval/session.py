"""One retrieval session: what the server type in force asks for (fetch the
Multi-drop or Mirrored mailboxes, or send ETRN / the mail-bagging finger),
then the Remote POP accounts in any type that keeps mailboxes. One part
failing never stops the others. The service at each due time, the web's
Retrieve now and `gatebox retrieve now` all come here."""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
from pathlib import Path

from firmware.mail import server_type
from firmware.mail.headers import safe_text
from firmware.mail.queue import Spool
from firmware.mail.queue_ops import picked_up_by_rescan

from . import AccountResult, RetrievalContext, etrn, finger
from . import state

log = logging.getLogger("gatebox.retrieval")
LOCK_NAME = "retrieval.lock"


def _optional(name: str):
    """The fetching modules of the retrieval package, each written on its own;
    a box without one still sends its triggers."""
    full = f"{__package__}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as error:
        if error.name != full:
            raise
        return None


MULTIDROP, MIRRORED, REMOTE_POP = (_optional(n) for n in ("multidrop", "mirrored", "remote_pop"))


def parts(settings) -> list[tuple[str, object]]:
    """(name, module with run(ctx)) to run for these settings, in order."""
    kind = server_type.in_effect(settings)
    chosen = {"multidrop": [("multidrop", MULTIDROP)], "mirrored": [("mirrored", MIRRORED)],
              "etrn": [("etrn", etrn)], "mailbag": [("mailbag", finger)]}.get(kind, [])
    if server_type.keeps_mailboxes(settings):
        chosen.append(("remote", REMOTE_POP))
    return chosen


def _run_part(name: str, module, ctx) -> list[AccountResult]:
    if module is None:
        return [AccountResult(name, ok=False, detail="not available in this firmware")]
    try:
        return list(module.run(ctx) or [])
    except Exception as error:
        log.exception("retrieval %s failed", name)
        return [AccountResult(name, ok=False, detail=safe_text(f"{type(error).__name__}: {error}", 300))]


def retrieve(store, data_dir, now: float, announce=picked_up_by_rescan,
             answers: float | None = None) -> list[AccountResult]:
    """Runs one session and records it (`answers`: the Retrieve now request it
    serves, cleared when done). Sessions never overlap (the service
    and the CLI may both be asked at once): the second waits for the first."""
    data_dir = Path(data_dir)
    with open(data_dir / LOCK_NAME, "a+") as lock:
        os.chmod(lock.name, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            settings = store.snapshot()
            state.started(store, now)
            ctx = RetrievalContext(store=store, spool=Spool(data_dir / "queue"), announce=announce,
                                   settings=settings, now=now)
            results = [r for name, module in parts(settings) for r in _run_part(name, module, ctx)]
            state.finished(store, now, "\n".join(r.summary for r in results), answers)
            return results
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
