"""The pipe on which smtpd tells the queue manager about new mail: one queue
id per line. Losing a note only delays delivery until the queue manager's
next rescan, so the writer never blocks and never fails the sender."""

from __future__ import annotations

import os


class NotifyWriter:
    """smtpd's end. Holds the write side of the pipe, replaced when the queue
    manager is restarted with a new one."""

    def __init__(self):
        self._fd: int | None = None

    def attach(self, fd: int):
        os.set_blocking(fd, False)
        self.close()
        self._fd = fd

    @property
    def fd(self) -> int | None:
        return self._fd

    def notify(self, qid: str):
        if self._fd is None:
            return
        try:
            os.write(self._fd, qid.encode() + b"\n")
        except (BlockingIOError, BrokenPipeError):
            pass  # the queue manager's rescan will find it

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def listen(loop, fd: int, on_queue_id):
    """The queue manager's end: call on_queue_id(qid) for every line read from
    fd, on the event loop."""
    os.set_blocking(fd, False)
    pending = bytearray()

    def readable():
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:  # smtpd is gone; we are about to be stopped too
            loop.remove_reader(fd)
            return
        pending.extend(data)
        *lines, rest = pending.split(b"\n")
        pending[:] = rest
        for line in lines:
            if line:
                on_queue_id(line.decode("ascii", "replace"))

    loop.add_reader(fd, readable)
