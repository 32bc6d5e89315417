"""What every gatebox process does the same way: log to stderr, size the
thread pool, stop on SIGTERM/SIGINT, die with its parent."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
import signal
import sys

_PR_SET_PDEATHSIG = 1
# Looked up at import, in the parent: die_with_parent runs in a child forked
# from a threaded process, which must not dlopen (another thread may have
# held the loader's lock at the fork).
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl
_M_MMAP_THRESHOLD = -3
LARGE_BUFFER = 128 * 1024


def configure_logging():
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%b %d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # aiosmtpd logs every command at INFO; the box logs its own summary lines.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def return_large_buffers():
    """Buffers of LARGE_BUFFER and more (a message's bytes) come from their
    own mappings and go back to the system when freed. glibc otherwise
    raises that threshold after the first large free, and from then on
    serves messages from the heap, which it keeps: the box stayed hundreds
    of MB larger after a burst of large messages. Fixing the threshold
    turns that adjustment off (mallopt(3)); not glibc, nothing changes."""
    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, LARGE_BUFFER)
    except (AttributeError, OSError):
        pass


def use_many_threads(loop, workers: int):
    # fsyncs and SMTP deliveries run in threads; the default pool is too small.
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=workers))


def on_stop_signals(loop, stop: asyncio.Event):
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            pass


async def stop_tasks(tasks):
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def die_with_parent():
    """preexec_fn for children: the kernel kills them when their parent dies,
    so nothing keeps serving a box that is down."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


async def stop_child(process, seconds: float):
    """SIGTERM, then SIGKILL after `seconds`: a child daemon (Dovecot,
    clamd) is gone when this returns."""
    if process is None or process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), seconds)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()


def log_tail(path, offset: int, otherwise: str) -> str:
    """The last lines a child daemon wrote to its log since `offset`, on one
    line, to say why it did not come up."""
    text = ""
    if path.exists():
        with open(path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
    return " | ".join(text.strip().splitlines()[-5:]) or otherwise
