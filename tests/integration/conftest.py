"""Fixtures shared by the integration tests."""

import pytest

from tests.support.mailserver import MailBox
from tests.support.net import wait_for_banner
from tests.support.tools import require


@pytest.fixture(scope="session", autouse=True)
def integration_tools():
    """Said once, before the first test, rather than in the middle of one."""
    require("swaks", "swaks TLS support", "smtp-sink", "dnsmasq", "dovecot", "dovecot imap",
            "dovecot pop3", "openssl")


@pytest.fixture
def mail_box(tmp_path, vendor, box_serial):
    box = MailBox(tmp_path / "box", vendor).start()
    # Dovecot may bind its ports a moment after SMTP answers on a busy machine.
    wait_for_banner(box.host, box.imap_port, accept=(b"* OK",))
    yield box
    box.stop()
