"""Fixtures the in-process queue manager and delivery tests share: the LAN
server and an Internet smarthost, each a recording SMTP server on loopback,
and the settings delivery reads."""

import pytest

from firmware.config import Store
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


@pytest.fixture
def delivery_settings(tmp_path):
    """A box's settings as outbound delivery reads them."""
    store = Store.create(tmp_path / "data")
    store.set_many({"email.domain": "example.com", "system.hostname": "gatebox"})
    values = store.snapshot()
    yield values
    store.close()
