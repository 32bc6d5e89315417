"""The queue index: a cache of the spool files, rebuilt from them at will."""

import os
import time

import pytest

from firmware.mail.queue import Envelope, Recipient, Spool
from firmware.mail.queue_index import QueueIndex


@pytest.fixture
def spool(tmp_path):
    made = Spool(tmp_path / "queue")
    made.create()
    return made


def _put(spool, qid, state="deferred", sender="a@example.net", received=None, header_from=""):
    envelope = Envelope(id=qid, sender=sender, recipients=[Recipient("b@example.com")],
                        received=received or time.time(), subject=f"subject {qid}",
                        header_from=header_from)
    spool.write(envelope, b"Subject: x\r\n\r\nbody\r\n", state)
    return envelope


def test_listing_follows_the_files(spool):
    _put(spool, "A1", received=300, sender="zed@example.net")
    _put(spool, "B2", received=100, sender="Amy@example.net")
    _put(spool, "C3", "hold", received=200, header_from="Bob <bob@example.net>")
    index = QueueIndex(spool)
    assert [r.qid for r in index.page("date").rows] == ["B2", "C3", "A1"]
    assert [r.qid for r in index.page("date", descending=True).rows] == ["A1", "C3", "B2"]
    assert [r.qid for r in index.page("from").rows] == ["B2", "C3", "A1"]
    assert [r.qid for r in index.page("id", view="held").rows] == ["C3"]
    assert index.page("id").counts == {"deferred": 2, "hold": 1}

    spool.move("A1", "deferred", "hold")
    spool.remove("deferred", "B2")
    page = index.page("id")
    assert [(r.qid, r.state) for r in page.rows] == [("A1", "hold"), ("C3", "hold")]
    assert page.total == 2
    index.close()


def test_rewritten_envelope_is_read_again(spool):
    envelope = _put(spool, "A1")
    index = QueueIndex(spool)
    assert index.page().rows[0].last_error == ""
    envelope.last_error = "connect to 192.0.2.1: refused"
    spool.rewrite(envelope, "deferred", "deferred")
    assert index.page().rows[0].last_error == "connect to 192.0.2.1: refused"
    index.close()


def test_unchanged_directories_are_not_scanned(spool):
    _put(spool, "A1")
    index = QueueIndex(spool)
    index.sync()
    old = time.time() - 60
    for state in ("incoming", "active", "deferred", "hold", "corrupt"):
        os.utime(spool.dir(state), (old, old))
    index.sync()  # records the old mtimes
    assert index.sync() == 0
    _put(spool, "B2")
    assert index.sync() == 1
    index.close()


def test_pagination_and_rebuild_from_the_files(spool):
    for number in range(120):
        _put(spool, f"M{number:04d}", received=number + 1)
    index = QueueIndex(spool)
    second = index.page("date", offset=50, limit=50)
    assert [r.qid for r in second.rows][:2] == ["M0050", "M0051"] and second.total == 120
    last = index.page("id", descending=True, offset=100, limit=50)
    assert [r.qid for r in last.rows][-1] == "M0000" and len(last.rows) == 20
    index.close()
    os.unlink(index.path)  # the index is disposable
    again = QueueIndex(spool)
    assert again.page().total == 120
    again.close()


def test_unreadable_file_is_listed_not_fatal(spool):
    (spool.dir("corrupt") / "BAD1").write_bytes(b"garbage")
    index = QueueIndex(spool)
    row = index.page(view="undeliverable").rows[0]
    assert row.qid == "BAD1" and "not a queue file" in row.last_error
    index.close()


def test_a_damaged_index_is_rebuilt_from_the_files(spool):
    _put(spool, "A1")
    index = QueueIndex(spool)
    index.sync()
    index.close()
    for suffix in ("-wal", "-shm"):
        (index.path.parent / (index.path.name + suffix)).unlink(missing_ok=True)
    index.path.write_bytes(b"this is not a database" * 100)
    again = QueueIndex(spool)
    assert [r.qid for r in again.page().rows] == ["A1"]
    again.close()
