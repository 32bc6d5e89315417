"""A box in stand-alone mode with the Mail Server SoftPak licensed, its
private Dovecot on free loopback ports, and mail clients for it (imaplib,
poplib, swaks), including ones that connect from another loopback address."""

from __future__ import annotations

import imaplib
import os
import poplib
import socket
import subprocess
from pathlib import Path

from .box import Box
from .net import free_port, wait_until
from .tools import require

PASSWORD = "correct-horse-1"


def let_mail_user_through(path: Path):
    """pytest makes its temporary directories private (0700); on the box the
    data partition is open to traverse. Dovecot reads the mailboxes as the
    `mail` user, so let it pass through the test's own directories (search
    permission only: it still cannot list them)."""
    import tempfile
    top = Path(tempfile.gettempdir())
    for directory in [path, *path.parents]:
        if directory == top or top not in directory.parents:
            break
        if directory.exists() and directory.stat().st_uid == os.geteuid():
            directory.chmod(directory.stat().st_mode | 0o001)


class MailBox(Box):
    def __init__(self, data, vendor, domain: str = "example.com", users=("bob", "carol"),
                 web: bool = False, **settings):
        require("dovecot", "dovecot imap", "dovecot pop3")
        super().__init__(data, domain=domain, web=web)
        let_mail_user_through(self.data)
        self.vendor = vendor
        self.license_id = self.activate()
        self.pop3_port, self.imap_port, self.imaps_port = free_port(), free_port(), free_port()
        self.configure(**{"email.server_type": "standalone", "mailserver.pop3_port": self.pop3_port,
                          "mailserver.imap_port": self.imap_port,
                          "mailserver.imaps_port": self.imaps_port, **settings})
        for user in users:
            self.cli("user", "add", user, "--password", PASSWORD)

    def activate(self, expiry: str | None = None) -> str:
        """Activates a Mail Server key; returns its license id."""
        self.cli("license", "activate", self.vendor.issue(mailserver=expiry))
        return self._newest_license_id()

    def _newest_license_id(self) -> str:
        from firmware.config import Store
        store = Store(self.data)
        try:
            return store.db.execute("SELECT key_id FROM licenses ORDER BY activated_at DESC").fetchone()[0]
        finally:
            store.close()

    def swaks(self, to: str, sender: str = "someone@outside.test", *extra) -> subprocess.CompletedProcess:
        require("swaks", "swaks TLS support")
        return subprocess.run(["swaks", "--server", f"{self.host}:{self.smtp_port}", "--to", to,
                               "--from", sender, "--timeout", "20", *extra],
                              capture_output=True, text=True, timeout=60)

    def send(self, to: str, sender: str = "someone@outside.test", subject: str = "hello", *extra):
        result = self.swaks(to, sender, "--header", f"Subject: {subject}", *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def mailbox(self, user: str) -> list[str]:
        """`gatebox mailbox list USER`, one line per message."""
        return [line for line in self.cli("mailbox", "list", user).stdout.splitlines() if line]

    def wait_for_mail(self, user: str, count: int, timeout: float = 20.0) -> list[str]:
        return wait_until(lambda: (lambda m: m if len(m) >= count else None)(self.mailbox(user)),
                          timeout, interval=0.3, what=f"{count} message(s) for {user}")

    def imap(self, source: str | None = None) -> imaplib.IMAP4:
        return _imap_from(source)(self.host, self.imap_port, timeout=20)

    def pop3(self, source: str | None = None) -> poplib.POP3:
        return _pop3_from(source)(self.host, self.pop3_port, timeout=20)


def _imap_from(source):
    if source is None:
        return imaplib.IMAP4

    class FromSource(imaplib.IMAP4):
        def _create_socket(self, timeout):
            return socket.create_connection((self.host, self.port), timeout, source_address=(source, 0))
    return FromSource


def _pop3_from(source):
    if source is None:
        return poplib.POP3

    class FromSource(poplib.POP3):
        def _create_socket(self, timeout):
            return socket.create_connection((self.host, self.port), timeout, source_address=(source, 0))
    return FromSource
