"""Runs the checks side by side, one thread each, and hands back each result
as it arrives. A check still busy at its time limit is reported as failed
then; its thread is left to end by its own socket timeouts (the probes set
them no longer than their limit) and whatever it answers later is dropped."""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterable, Iterator

from .result import FAIL, Check, Context, Outcome, Result


def run(checks: Iterable[Check], context: Context) -> Iterator[Result]:
    checks = list(checks)
    finished: queue.Queue = queue.Queue()
    started = time.monotonic()
    deadlines = {check.name: started + check.limit for check in checks}
    by_name = {check.name: check for check in checks}
    for check in checks:
        threading.Thread(target=_probe, args=(check, context, finished),
                         name=f"diagnose-{check.name}", daemon=True).start()
    while deadlines:
        timeout = max(0.0, min(deadlines.values()) - time.monotonic())
        try:
            name, outcome, seconds = finished.get(timeout=timeout)
        except queue.Empty:
            now = time.monotonic()
            for name, deadline in sorted(deadlines.items()):
                if deadline <= now:
                    del deadlines[name]
                    check = by_name[name]
                    yield Result(name, check.title, FAIL,
                                 f"no answer within the time limit of {check.limit:g} s",
                                 "The server named above is unreachable or does not answer: "
                                 "check its address, that it is running, and the firewall.",
                                 now - started)
            continue
        if name not in deadlines:
            continue  # reported already as out of time
        del deadlines[name]
        check = by_name[name]
        yield Result(name, check.title, outcome.status, _printable(outcome.reason),
                     _printable(outcome.fix), seconds)


def _printable(text: str) -> str:
    # Reasons quote what servers said; a terminal must not take any of it as
    # a control sequence (the web page escapes markup on its own).
    return "".join(c if c.isprintable() else "?" for c in text)


def _probe(check: Check, context: Context, finished: queue.Queue):
    began = time.monotonic()
    try:
        outcome = check.probe(context)
    except Exception as error:  # noqa: BLE001 - one broken probe must not hide the others
        outcome = Outcome(FAIL, f"the check itself failed: {error.__class__.__name__}: {error}",
                          "Report this to support with the reason shown.")
    finished.put((check.name, outcome, time.monotonic() - began))
