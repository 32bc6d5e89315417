"""Product accounts (Users & Groups > Users). Passwords are stored only as
scrypt hashes; SMTP AUTH and the web admin both verify against them."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import threading
import time

from firmware import verified_passwords
from firmware.config import transaction

# scrypt with N=2^14 (the scrypt paper's interactive-login cost) needs 16 MiB
# and ~50 ms: slow enough to make guessing expensive, and small enough to fit
# beside the services in a 256 MB box. Stored hashes carry their own
# cost, so a change here never locks anyone out.
_N, _R, _P = 2 ** 14, 8, 1
# One hash at a time in a process. Two at once (the auth service's two turns
# in a storm of first logins) took 80 s in a 256 MB guest under emulation,
# swapping, where one after the other takes about 2 s each; a login already
# verified needs no hash at all (verified_passwords).
_hashing = threading.Lock()
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class AccountError(ValueError):
    pass


def hash_password(password: str, *, n: int = _N) -> str:
    salt = os.urandom(16)
    digest = _scrypt(password.encode(), salt=salt, n=n, r=_R, p=_P, dklen=32)
    return "scrypt${}${}${}${}${}".format(n, _R, _P, base64.b64encode(salt).decode(),
                                          base64.b64encode(digest).decode())


def _scrypt(password: bytes, **parameters) -> bytes:
    with _hashing:
        return hashlib.scrypt(password, maxmem=2 ** 26, **parameters)


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                         p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def validate_name(name: str) -> str:
    name = name.strip().lower()
    if not _NAME.match(name):
        raise AccountError(f"user name '{name}': must start with a letter or digit and hold only "
                           "a-z, 0-9, '.', '_' and '-' (at most 64 characters)")
    return name


def validate_password(password: str) -> str:
    if len(password) < 8:
        raise AccountError("password: must be at least 8 characters")
    return password


def add_user(store, name: str, password: str, *, admin: bool = False, actor: str = "system"):
    name = validate_name(name)
    validate_password(password)
    hashed = hash_password(password)
    with transaction(store.db):
        if store.db.execute("SELECT 1 FROM accounts WHERE name = ?", [name]).fetchone():
            raise AccountError(f"user name '{name}': an account with this name already exists")
        store.db.execute("INSERT INTO accounts(name, password_hash, is_admin, created) VALUES(?,?,?,?)",
                         [name, hashed, int(admin), time.time()])
        store.audit(actor, f"add user {name}", "", "administrator" if admin else "user")


def set_password(store, name: str, password: str, actor: str = "system"):
    validate_password(password)
    hashed = hash_password(password)
    with transaction(store.db):
        cursor = store.db.execute("UPDATE accounts SET password_hash = ? WHERE name = ?", [hashed, name])
        if cursor.rowcount == 0:
            raise AccountError(f"user name '{name}': no such account")
        store.audit(actor, f"change password of {name}")


def delete_user(store, name: str, actor: str = "system"):
    with transaction(store.db):
        cursor = store.db.execute("DELETE FROM accounts WHERE name = ?", [name])
        if cursor.rowcount == 0:
            raise AccountError(f"user name '{name}': no such account")
        store.audit(actor, f"delete user {name}")


def list_users(store) -> list[dict]:
    return [dict(row) for row in store.db.query(
        "SELECT name, is_admin, created FROM accounts ORDER BY name")]


def authenticate(store, name: str, password: str) -> bool:
    """True when the name and password match any account. Sign-ins ask
    authenticate_mail or authenticate_admin instead."""
    return _authenticate(store, name, password, admin=None)


def authenticate_mail(store, name: str, password: str) -> bool:
    """SMTP AUTH, POP3 and IMAP. Administrators are not mail accounts: their
    names fail here exactly like unknown ones, so a guessed administrator
    password never relays mail and a mail login never tests one."""
    return _authenticate(store, name, password, admin=False)


def authenticate_admin(store, name: str, password: str) -> bool:
    """The web admin: administrators only."""
    return _authenticate(store, name, password, admin=True)


def _authenticate(store, name: str, password: str, admin: bool | None) -> bool:
    # Every refusal costs one scrypt run, so timing does not tell unknown
    # names, administrators and wrong passwords apart.
    row = store.db.execute("SELECT password_hash, is_admin FROM accounts WHERE name = ?",
                           [name.strip().lower()]).fetchone()
    if row is not None and admin is not None and bool(row[1]) != admin:
        row = None
    if row is None:
        check_password(password, _dummy_hash())
        return False
    # Only a real account's success is remembered (verified_passwords says why).
    if verified_passwords.shared.known(password, row[0]):
        return True
    ok = check_password(password, row[0])
    if ok:
        verified_passwords.shared.remember(password, row[0])
    return ok


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not a real password")
