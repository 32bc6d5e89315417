"""On the appliance the services run as the unprivileged `gatebox` user, and
so does the Mail Server SoftPak's private Dovecot: it must neither chroot nor
hand its sockets to Dovecot's own groups. The configuration generated for an
unprivileged owner is started here as `nobody`, and answers IMAP and POP3."""

import imaplib
import poplib
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from softpaks.mailserver import dovecot
from tests.support.net import free_port, wait_until

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def as_nobody(monkeypatch):
    """config_text as it runs when `gatebox run` is not root."""
    monkeypatch.setattr(dovecot.os, "geteuid", lambda: NOBODY.pw_uid)
    monkeypatch.setattr(dovecot.os, "getegid", lambda: NOBODY.pw_gid)


def greeting(connect):
    try:
        return connect()
    except OSError:
        return None


@pytest.fixture
def shared_dir():
    """pytest's own temporary directories are closed to other users."""
    directory = Path(tempfile.mkdtemp(prefix="gatebox-nobody-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_dovecot_runs_unprivileged(shared_dir, as_nobody, monkeypatch):
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed to drop privileges"
    monkeypatch.setenv("GATEBOX_SERIAL", "GBX-NOBODY")
    data = shared_dir / "data"
    (data / "dovecot").mkdir(parents=True)
    imap_port, pop3_port = free_port(), free_port()
    text = dovecot.config_text(data, bind="127.0.0.1", pop3_port=pop3_port, imap_port=imap_port,
                               hostname="box.example.com")
    assert "default_internal_user = nobody" in text
    config = data / "dovecot" / "dovecot.conf"
    config.write_text(text)
    runtime = dovecot.runtime_dir(data)
    shutil.rmtree(runtime, ignore_errors=True)
    subprocess.run(["chown", "-R", f"{NOBODY.pw_uid}:{NOBODY.pw_gid}", str(data)], check=True)

    process = subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups",
         dovecot.DOVECOT, "-F", "-c", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert process.poll() is None, process.communicate()[0]
        imap = wait_until(lambda: greeting(lambda: imaplib.IMAP4("127.0.0.1", imap_port, timeout=5)),
                          timeout=20, interval=0.3, what="Dovecot's IMAP greeting")
        assert b"gatebox ready" in imap.welcome
        imap.logout()
        pop3 = greeting(lambda: poplib.POP3("127.0.0.1", pop3_port, timeout=5))
        assert pop3 is not None and b"gatebox ready" in pop3.getwelcome()
        pop3.quit()
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0].decode(errors="replace")
        shutil.rmtree(runtime, ignore_errors=True)
    log = (data / "dovecot" / "dovecot.log").read_text()
    assert "Fatal" not in log and "Operation not permitted" not in log, log + output
