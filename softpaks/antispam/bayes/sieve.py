"""Teaching Bayes from the mail program: Dovecot's IMAPSieve runs a Sieve
script when a user copies, moves or saves mail into Junk (spam), or copies
or moves it out of Junk into any folder but Trash (not spam); the script
pipes the message (vnd.dovecot.pipe) to a small program, as mailcow does
with rspamd.

The program runs inside Dovecot's imap process, as the mail user, who can
neither read the box's databases nor run its Python: it only drops the
message into a spool (DATA/antispam/sieve/spool/spam or /ham, the mail
user's) under a dot-name and renames it into place, and the box's own
service (spool.py) learns and removes it. A full spool (MAX_SPOOLED) drops
further lessons rather than fill the disk.

The scripts and programs are rewritten, durably, whenever dovecot.conf is."""

from __future__ import annotations

import logging
import os
import pwd
import shlex
from pathlib import Path

from firmware.system.durable import write_atomically

log = logging.getLogger("gatebox.antispam")

# Dovecot refuses to start with a plugin it cannot load: without Pigeonhole
# (dovecot-sieve) the rules are left out and the Junk folder teaches nothing.
PLUGINS = ("/usr/lib/dovecot/modules/lib95_imap_sieve_plugin.so",
           "/usr/lib/dovecot/modules/sieve/lib90_sieve_imapsieve_plugin.so",
           "/usr/lib/dovecot/modules/sieve/lib90_sieve_extprograms_plugin.so")
JUNK = "Junk"
TRASH = "Trash"
KINDS = ("spam", "ham")
MAX_SPOOLED = 1000
MAX_SPOOLED_BYTES = 10 * 1024 * 1024
# Who Dovecot reads mail as: the `mail` user when the box runs as root
# (Dovecot never opens mail as root), else whoever runs the box; the same
# rule as the Mail Server's mailbox owner.
MAIL_USER = "mail"

LEARN_SPAM = """require ["vnd.dovecot.pipe", "copy", "imapsieve"];
pipe :copy "learn-spam";
"""
LEARN_HAM = f"""require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];
if environment :matches "imap.mailbox" "*" {{ set "mailbox" "${{1}}"; }}
if string "${{mailbox}}" "{TRASH}" {{ stop; }}
pipe :copy "learn-ham";
"""


def sieve_dir(data_dir) -> Path:
    return Path(data_dir) / "antispam" / "sieve"


def spool_dir(data_dir, kind: str) -> Path:
    return sieve_dir(data_dir) / "spool" / kind


def mail_ids() -> tuple[int, int]:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(MAIL_USER)
        return entry.pw_uid, entry.pw_gid
    return os.geteuid(), os.getegid()


def program_text(data_dir, kind: str) -> str:
    spool = shlex.quote(str(spool_dir(Path(data_dir).resolve(), kind)))
    return "\n".join([
        "#!/bin/sh",
        "# Run by Dovecot (IMAPSieve) as the mail user: spools the message on stdin",
        "# for the box to learn. Written by gatebox; edits are overwritten.",
        "PATH=/usr/bin:/bin",
        "umask 077",
        f"spool={spool}",
        f'[ "$(ls -A "$spool" | wc -l)" -lt {MAX_SPOOLED} ] || exit 0',
        'name="$(date +%s).$$.$(od -An -N6 -tx1 /dev/urandom | tr -d \' \\n\')"',
        f'head -c {MAX_SPOOLED_BYTES} > "$spool/.$name" && mv "$spool/.$name" "$spool/$name"',
        "",
    ])


def _directory(path: Path, mode: int, owner: tuple[int, int] | None = None):
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None and os.geteuid() == 0:
        os.chown(path, *owner)
    path.chmod(mode)


def write_files(data_dir) -> Path:
    """The scripts, the programs and the spool; returns their directory."""
    top = sieve_dir(data_dir)
    owner = mail_ids()
    parent = top.parent
    parent.mkdir(parents=True, exist_ok=True)
    # The mail user passes through to its spool (search only, no listing).
    parent.chmod(parent.stat().st_mode & 0o7777 | 0o011)
    # Dovecot saves the compiled scripts next to them, as the mail user.
    _directory(top, 0o755, owner)
    _directory(top / "bin", 0o755)
    _directory(top / "spool", 0o755, owner)
    for kind in KINDS:
        _directory(spool_dir(data_dir, kind), 0o700, owner)
    wanted = {top / "learn-spam.sieve": (LEARN_SPAM, 0o644),
              top / "learn-ham.sieve": (LEARN_HAM, 0o644),
              top / "bin" / "learn-spam": (program_text(data_dir, "spam"), 0o755),
              top / "bin" / "learn-ham": (program_text(data_dir, "ham"), 0o755)}
    for path, (text, mode) in wanted.items():
        try:
            same = path.read_text() == text
        except OSError:
            same = False
        if not same:
            write_atomically(path, text, mode)
    return top


def dovecot_settings(store, data_dir, plugins=PLUGINS) -> list[str]:
    missing = [path for path in plugins if not os.path.exists(path)]
    if missing:
        log.warning("warning: bayes: %s is missing (install dovecot-sieve): moving mail into or "
                    "out of Junk teaches nothing", missing[0])
        return []
    top = write_files(data_dir)
    return ["\n".join([
        "# Anti-Spam: moving mail into or out of Junk teaches the Bayes filter.",
        "protocol imap {",
        "  mail_plugins = $mail_plugins imap_sieve",
        "}",
        "plugin {",
        "  sieve_plugins = sieve_imapsieve sieve_extprograms",
        "  sieve_global_extensions = +vnd.dovecot.pipe",
        f"  sieve_pipe_bin_dir = {top / 'bin'}",
        f"  imapsieve_mailbox1_name = {JUNK}",
        "  imapsieve_mailbox1_causes = COPY APPEND",
        f"  imapsieve_mailbox1_before = file:{top / 'learn-spam.sieve'}",
        "  imapsieve_mailbox2_name = *",
        f"  imapsieve_mailbox2_from = {JUNK}",
        "  imapsieve_mailbox2_causes = COPY",
        f"  imapsieve_mailbox2_before = file:{top / 'learn-ham.sieve'}",
        "}",
    ]) + "\n"]
