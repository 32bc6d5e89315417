"""The group commit's process: makes smtpd's new queue files durable.

smtpd writes each new message under tmp/ and hands the open file over this
socket (SCM_RIGHTS) with its queue id. For every batch that is waiting, this
process starts the write-back of all of its files at once, fsyncs each, renames
each into incoming and fsyncs incoming once; then it answers each id with 0 or
the errno that failed it.

It is a process of its own, not a thread of smtpd, because of the GIL: every
open, write, fsync and rename a thread makes gives the interpreter lock back
and then waits for smtpd's busy event loop to let go of it again. Under load
a thread spent about 4 ms per message that way, for 0.1 ms of fsync, and the
clients waited on it. Here nothing else wants the lock.

Started with the queue's root and the socket's descriptor number; it dies
with smtpd and exits when smtpd closes the socket."""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import socket
import sys

from firmware.background_work import run_as_background_work

BATCH = 64
MAX_ID = 64
_PR_SET_PDEATHSIG = 1
_SYNC_FILE_RANGE_WRITE = 2


def _libc_function(name: str, *argtypes):
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (AttributeError, OSError):
        return None
    function.argtypes = argtypes
    return function


_prctl = _libc_function("prctl", ctypes.c_int, ctypes.c_ulong)
_sync_file_range = _libc_function("sync_file_range", ctypes.c_int, ctypes.c_longlong,
                                  ctypes.c_longlong, ctypes.c_uint)


def start_write_back(fd: int):
    """Queue the file's dirty pages for writing without waiting. Started for
    the whole batch before the first fsync, the files' blocks are allocated
    together and one journal commit covers most of them; fsync'd one by one
    cold, each file cost a commit of its own. Only a hint: fsync is what
    makes the file durable."""
    if _sync_file_range is not None:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def receive_batch(sock: socket.socket) -> list[tuple[str, int | None]]:
    """Wait for one request, then take whatever else is already waiting.
    Empty when smtpd has gone. The socket is non-blocking: a blocking one
    waited on recvmsg even with MSG_DONTWAIT."""
    batch = []
    select.select([sock], [], [])
    while len(batch) < BATCH:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, MAX_ID, 1)
        except BlockingIOError:
            break
        except ConnectionError:
            return batch
        if not data and not fds:
            break
        for extra in fds[1:]:
            os.close(extra)
        batch.append((data.decode("ascii", "replace"), fds[0] if fds else None))
    return batch


def valid_id(qid: str) -> bool:
    return 0 < len(qid) <= MAX_ID and qid.isalnum()


def fsync_directory(path: str):
    # The twin of firmware.mail.queue.fsync_dir: importing the queue module
    # (asyncio, json, subprocess) would take this process from 12 to 22 MB.
    directory = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def commit(root: str, batch: list[tuple[str, int | None]]) -> list[tuple[str, int]]:
    """fsync, rename into incoming and one fsync of incoming for the batch.
    The answer for each id is 0 once its file would survive a crash."""
    tmp, incoming = os.path.join(root, "tmp"), os.path.join(root, "incoming")
    results: dict[str, int] = {}
    valid = []
    for qid, fd in batch:
        if fd is not None and valid_id(qid):
            valid.append((qid, fd))
        else:
            results[qid] = errno.EINVAL
            if fd is not None:
                os.close(fd)
    for _qid, fd in valid:
        start_write_back(fd)
    synced = []
    for qid, fd in valid:
        try:
            os.fsync(fd)
            synced.append(qid)
        except OSError as error:
            results[qid] = error.errno or errno.EIO
        finally:
            os.close(fd)
    renamed = []
    for qid in synced:
        try:
            os.rename(os.path.join(tmp, qid), os.path.join(incoming, qid))
            renamed.append(qid)
        except OSError as error:
            results[qid] = error.errno or errno.EIO
    if renamed:
        try:
            fsync_directory(incoming)
        except OSError as error:
            for qid in renamed:
                results[qid] = error.errno or errno.EIO
    for qid in renamed:
        results.setdefault(qid, 0)
    return [(qid, results[qid]) for qid, _fd in batch]


def answer(sock: socket.socket, results: list[tuple[str, int]]):
    payload = "".join(f"{qid} {code}\n" for qid, code in results).encode("ascii")
    while True:
        try:
            sock.send(payload)
            return
        except BlockingIOError:
            select.select([], [sock], [])


def serve(root: str, sock: socket.socket):
    while True:
        batch = receive_batch(sock)
        if not batch:
            return
        try:
            answer(sock, commit(root, batch))
        except ConnectionError:
            return  # smtpd has gone; its clients heard no 250 for these


def main(argv: list[str]) -> int:
    root, fd_text, parent = argv[1], argv[2], int(argv[3])
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        return 0  # smtpd died before the line above took effect
    run_as_background_work()
    sock = socket.socket(fileno=int(fd_text))
    sock.setblocking(False)
    serve(root, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
