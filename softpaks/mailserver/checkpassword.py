"""The checkpassword program Dovecot runs for every POP3/IMAP login
(https://cr.yp.to/checkpwd/interface.html, with Dovecot's extensions): it
checks the name and password against the box's own accounts table, so no
second copy of any password exists, and answers with the user's Maildir.

    python -m softpaks.mailserver.checkpassword DATA_DIR REPLY_PROGRAM...

Reads "name\\0password\\0..." from fd 3. Exit 1: wrong name or password;
111: temporary failure, also the answer to a client or account the login
limiter has locked out (firmware/login_limits.py), whatever the password.
A refusal that is not about the password (license lapsed, off-site client,
no Email permission) is answered as Dovecot's `nologin` with a `reason`, so
the client sees why instead of "authentication failed"."""

from __future__ import annotations

import os
import sys

AUTH_FAILED = 1
TEMPORARY_FAILURE = 111


def _read_credentials() -> tuple[str, str]:
    data = b""
    while len(data) < 4096:
        chunk = os.read(3, 4096)
        if not chunk:
            break
        data += chunk
    parts = data.split(b"\0")
    if len(parts) < 2:
        raise ValueError("malformed checkpassword input")
    return parts[0].decode("utf-8", "replace"), parts[1].decode("utf-8", "replace")


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: checkpassword DATA_DIR REPLY_PROGRAM...", file=sys.stderr)
        return TEMPORARY_FAILURE
    data_dir, reply = argv[1], argv[2:]
    try:
        user, password = _read_credentials()
        from firmware.config import Store
        from . import access, maildir
        from .license import is_licensed
        store = Store(data_dir)
        settings = store.snapshot()
    except Exception as error:  # anything else is Dovecot's "temporary failure"
        print(f"checkpassword: {error}", file=sys.stderr)
        return TEMPORARY_FAILURE
    name = access.login_name(user, settings)
    if name is None:
        return AUTH_FAILED
    client_ip = os.environ.get("TCPREMOTEIP", "")
    refused = access.refusal(store, client_ip, settings, is_licensed(store))
    if refused is None:
        attempt = access.sign_in(store, client_ip, name, password, os.environ.get("SERVICE", "imap"))
        if access.locked(attempt):
            # Temporary: the client may try again once the lockout ends,
            # and it is told nothing about the password.
            print(f"checkpassword: {attempt.lockout.describe()}", file=sys.stderr)
            return TEMPORARY_FAILURE
        if not access.signed_in(attempt):
            return AUTH_FAILED
        refused = access.account_refusal(store, name)
    if refused is not None:
        fields = {"USER": name, "nologin": "Y", "reason": refused}
    else:
        owner = maildir.mail_owner()
        path = maildir.mailbox_path(store, store.data_dir, name, settings["email.domain"])
        maildir.ensure(path, owner)
        fields = {"USER": name, "userdb_uid": str(owner.uid), "userdb_gid": str(owner.gid),
                  "userdb_home": str(path), "userdb_mail": f"maildir:{path}"}
    os.environ.update(fields)
    os.environ["EXTRA"] = " ".join(k for k in fields if k != "USER")
    store.close()
    os.execv(reply[0], reply)
    return TEMPORARY_FAILURE  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
