"""The group commit's process (firmware/mail/commit_worker.py): what smtpd
is told when it dies, that the next message starts another, and that it
trusts nothing it is sent."""

import asyncio
import errno
import os
import signal
import time

import pytest

from firmware.mail import commit_worker
from firmware.mail.queue import Envelope, Recipient, Spool, new_queue_id

MESSAGE = b"Subject: x\r\n\r\nbody\r\n"


def envelope() -> Envelope:
    return Envelope(id=new_queue_id(), sender="alice@far.test",
                    recipients=[Recipient("bob@example.com")], received=time.time())


@pytest.fixture
def spool(tmp_path):
    spool = Spool(tmp_path / "queue")
    spool.create()
    yield spool
    spool.close()


async def wait_for(condition, what: str, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_a_killed_commit_process_fails_what_it_held_and_the_next_message_starts_another(spool):
    held, after = envelope(), envelope()

    async def scenario():
        first = await spool.enqueue(envelope(), MESSAGE)
        worker = spool._committer.process
        os.kill(worker.pid, signal.SIGSTOP)
        pending = asyncio.ensure_future(spool.enqueue(held, MESSAGE))
        await wait_for(lambda: held.id in os.listdir(spool.tmp), "the held message's file")
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(OSError) as failed:
            await pending
        assert failed.value.errno == errno.EIO
        assert held.id not in os.listdir(spool.tmp)
        placed = await spool.enqueue(after, MESSAGE)
        assert spool._committer.process.pid != worker.pid
        return first, placed
    first, placed = asyncio.run(scenario())
    assert sorted(spool.ids("incoming")) == sorted([first.name, placed.name])
    assert held.id not in spool.ids("incoming") and not os.listdir(spool.tmp)


def test_a_started_committer_runs_its_process_before_any_message_and_keeps_it(spool):
    async def scenario():
        spool.start_committer()
        worker = spool._committer.process
        assert worker is not None and worker.poll() is None
        assert not os.listdir(spool.tmp) and not spool.ids("incoming")
        spool.start_committer()  # a second start keeps the running process
        placed = await spool.enqueue(envelope(), MESSAGE)
        assert spool._committer.process is worker
        return placed
    placed = asyncio.run(scenario())
    assert spool.ids("incoming") == [placed.name]


def test_the_commit_process_exits_when_the_queue_closes(spool):
    async def scenario():
        await spool.enqueue(envelope(), MESSAGE)
        return spool._committer.process
    worker = asyncio.run(scenario())
    spool.close()
    assert worker.returncode == 0


def test_ids_that_are_not_queue_ids_are_refused_and_nothing_is_renamed(tmp_path):
    for name in ("tmp", "incoming"):
        (tmp_path / name).mkdir()
    (tmp_path / "tmp" / "GOOD1").write_bytes(MESSAGE)
    (tmp_path / "victim").write_bytes(b"keep me")
    fds = [os.open(tmp_path / "tmp" / "GOOD1", os.O_RDONLY),
           os.open(tmp_path / "victim", os.O_RDONLY)]
    results = commit_worker.commit(str(tmp_path), [("GOOD1", fds[0]), ("../victim", fds[1]),
                                                   ("NOFD", None)])
    assert results == [("GOOD1", 0), ("../victim", errno.EINVAL), ("NOFD", errno.EINVAL)]
    assert os.listdir(tmp_path / "incoming") == ["GOOD1"]
    assert (tmp_path / "victim").read_bytes() == b"keep me"
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)  # the process closes every descriptor it is given
