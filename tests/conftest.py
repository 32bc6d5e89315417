import pytest

from tests.support.box import Box
from tests.support.sink import RecordingServer, SmtpSink

pytest_plugins = ["tests.support.licensing", "tests.support.softpaks"]


@pytest.fixture
def sink(tmp_path):
    server = SmtpSink(tmp_path / "sink").start()
    yield server
    server.stop()


@pytest.fixture
def lan_server():
    """The office's SMTP server on the LAN, as a recording server."""
    server = RecordingServer().start()
    yield server
    server.stop()


@pytest.fixture
def make_box(tmp_path):
    boxes = []

    def make(name="box", **settings):
        box = Box(tmp_path / name, settings=settings)
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.stop()
