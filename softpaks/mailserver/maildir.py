"""Mailboxes on the data partition: one Maildir per user under
DATA/mail/<domain>/<user>/, shared with Dovecot. A message is written to
tmp/, fsync'd and renamed into new/, so a reader never sees half a message
and a crash loses nothing that was reported delivered."""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import itertools
import os
import pwd
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from firmware.config import transaction
from firmware.mail.queue import fsync_dir

MAIL_USER = "mail"   # exists on every Debian system; Dovecot refuses uid 0 for mail
_counter = itertools.count()


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def mail_owner() -> Owner:
    """Who owns the mailboxes: the `mail` user when the box runs as root
    (Dovecot will not open mail as root), otherwise whoever runs the box."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(MAIL_USER)
        return Owner(entry.pw_uid, entry.pw_gid)
    return Owner(os.geteuid(), os.getegid())


def mail_root(data_dir: Path) -> Path:
    return Path(data_dir) / "mail"


def mailbox_domain(store, name: str, default_domain: str) -> str:
    row = store.db.execute("SELECT domain FROM mail_users WHERE name = ?", [name]).fetchone()
    if row:
        return row[0]
    with transaction(store.db):
        store.db.execute("INSERT OR IGNORE INTO mail_users(name, domain) VALUES(?, ?)",
                         [name, default_domain])
        row = store.db.execute("SELECT domain FROM mail_users WHERE name = ?", [name]).fetchone()
    return row[0]


def mailbox_path(store, data_dir: Path, name: str, default_domain: str) -> Path:
    """The Maildir of a user (or of its archive-<user>, which lives beside it)."""
    owner_name = name[len("archive-"):] if name.startswith("archive-") else name
    return mail_root(data_dir) / mailbox_domain(store, owner_name, default_domain) / name


def _make_dirs(path: Path, owner: Owner):
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue
        if os.geteuid() == 0:
            os.chown(directory, owner.uid, owner.gid)


def ensure(path: Path, owner: Owner | None = None):
    owner = owner or mail_owner()
    for sub in ("tmp", "new", "cur"):
        if not (path / sub).is_dir():
            _make_dirs(path / sub, owner)


def deliver(path: Path, message: bytes, owner: Owner | None = None) -> str:
    """Writes one message (LF line endings, as Maildir readers expect) and
    returns its file name in new/."""
    owner = owner or mail_owner()
    ensure(path, owner)
    data = message.replace(b"\r\n", b"\n")
    now = time.time()
    base = (f"{int(now)}.M{int(now * 1e6) % 1000000}P{os.getpid()}Q{next(_counter)}"
            f".{socket.gethostname().replace('/', '_').replace(':', '_')},S={len(data)}")
    tmp = path / "tmp" / base
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if os.geteuid() == 0:
            os.fchown(fd, owner.uid, owner.gid)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path / "new" / base)
    fsync_dir(path / "new")
    return base


@dataclass(frozen=True)
class Stored:
    id: str          # the Maildir file name without flags
    folder: str      # new | cur
    sender: str
    subject: str
    size: int
    path: Path


def messages(path: Path) -> list[Stored]:
    """What a mailbox holds (new and cur), oldest first."""
    found = []
    for folder in ("new", "cur"):
        directory = path / folder
        if not directory.is_dir():
            continue
        for entry in os.scandir(directory):
            if not entry.is_file():
                continue
            with open(entry.path, "rb") as handle:
                head = email.parser.BytesParser(policy=email.policy.compat32).parse(
                    handle, headersonly=True)
            found.append(Stored(entry.name.split(":")[0], folder, str(head.get("From", "")),
                                str(head.get("Subject", "")), entry.stat().st_size,
                                Path(entry.path)))
    return sorted(found, key=lambda m: m.id)


def remove(path: Path, message_id: str) -> bool:
    for stored in messages(path):
        if stored.id == message_id:
            stored.path.unlink()
            return True
    return False


def purge(path: Path) -> int:
    """Deletes every message of a mailbox; returns how many there were."""
    stored = messages(path)
    for message in stored:
        message.path.unlink(missing_ok=True)
    return len(stored)


def find(path: Path, message_id: str) -> Stored | None:
    return next((m for m in messages(path) if m.id == message_id), None)
