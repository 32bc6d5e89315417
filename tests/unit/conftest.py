"""Fixtures the in-process queue manager tests share: the LAN server and an
Internet smarthost, each a recording SMTP server on loopback."""

import pytest

from tests.support.sink import RecordingServer


@pytest.fixture
def lan():
    server = RecordingServer().start()
    yield server
    server.stop()


@pytest.fixture
def internet():
    server = RecordingServer().start()
    yield server
    server.stop()
