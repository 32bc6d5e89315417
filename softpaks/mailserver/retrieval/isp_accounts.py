"""The mailboxes the box fetches besides the domain's one: each user's own
ISP login (Mirrored) and the Remote POP accounts (ISMail), each into one
local recipient. Everything typed in the web admin or the CLI is checked
here, since a host name, login or password ends up in a connection to a
server on the Internet: line breaks would inject protocol commands.

Passwords are kept as given (they must be sent to the ISP) and leave this
module only inside an Account for the fetch, never in a listing."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from firmware.config import transaction
from firmware.config.types import is_hostname, split_host_port

from .. import groups
from ..directory import DirectoryError, local_domains, local_name, record_change
from . import Account, AccountResult, seen
from .mailbox_client import DEFAULT_PORTS

PROTOCOLS = ("pop3", "imap")
TLS_MODES = ("tls", "starttls", "none")
MAX_FIELD = 255


class AccountInputError(DirectoryError):
    """A refused value; the message starts with the field's name."""


@dataclass(frozen=True)
class IspLogin:
    """A user's own ISP mailbox (Mirrored). No password here: only whether one is set."""
    name: str
    login: str
    password_set: bool


@dataclass(frozen=True)
class RemoteAccount:
    """One Remote POP account as listed: no password, only whether one is set."""
    id: int
    host: str
    port: int
    protocol: str
    tls: str
    verify: bool
    login: str
    password_set: bool
    recipient: str
    enabled: bool

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def describe(self) -> str:
        security = {"tls": "TLS", "starttls": "STARTTLS", "none": "no TLS"}[self.tls]
        if self.tls != "none" and not self.verify:
            security += ", certificate not checked"
        state = "" if self.enabled else ", disabled"
        return (f"{self.id}: {self.login} at {self.protocol.upper()} {self.address} ({security}{state})"
                f" -> {self.recipient}")


# ---- field rules ---------------------------------------------------------------------
def _clean_line(text: str, what: str, allow_space: bool = False) -> str:
    # isprintable() also catches the Unicode line and paragraph separators.
    if any(not c.isprintable() for c in text):
        raise AccountInputError(f"{what}: must not hold line breaks or control characters")
    if not allow_space and any(c.isspace() for c in text):
        raise AccountInputError(f"{what}: must not hold spaces")
    if len(text) > MAX_FIELD:
        raise AccountInputError(f"{what}: at most {MAX_FIELD} characters")
    return text


def host(text: str, what: str = "Host") -> str:
    text = (text or "").strip()
    if not text:
        raise AccountInputError(f"{what}: give the mail server's host name or IP address")
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if not is_hostname(bare):
        raise AccountInputError(f"{what} '{_shown(text)}': not a host name or IP address "
                                "(such as pop.isp.net or 192.0.2.10)")
    return bare.rstrip(".").lower()


def port(text, protocol: str, tls: str, what: str = "Port") -> int:
    """The port given, or the protocol's well-known one when left empty."""
    text = str(text if text is not None else "").strip()
    if not text:
        return DEFAULT_PORTS[(protocol, tls)]
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise AccountInputError(f"{what} '{_shown(text)}': must be a number from 1 to 65535 "
                                "(or empty for the protocol's usual port)")
    return int(text)


def protocol(text: str) -> str:
    text = (text or "").strip().lower()
    if text not in PROTOCOLS:
        raise AccountInputError(f"Protocol '{_shown(text)}': one of pop3, imap")
    return text


def tls_mode(text: str) -> str:
    text = (text or "").strip().lower()
    if text not in TLS_MODES:
        raise AccountInputError(f"Connection Security '{_shown(text)}': one of tls, starttls, none")
    return text


# IMAP sends the login as an atom (RFC 3501): these would end it or start a literal.
_NOT_IN_LOGIN = set('"(){}\\%*]')


def login(text: str, what: str = "Login Name") -> str:
    text = _clean_line((text or "").strip(), what)
    if not text:
        raise AccountInputError(f"{what}: must not be empty")
    if _NOT_IN_LOGIN & set(text):
        raise AccountInputError(f"{what}: must not hold any of " + " ".join(sorted(_NOT_IN_LOGIN)))
    return text


def password(text: str, what: str = "Password") -> str:
    # Spaces are allowed (a passphrase); leading and trailing ones are kept as typed.
    if not text:
        raise AccountInputError(f"{what}: must not be empty")
    return _clean_line(text, what, allow_space=True)


def mail_user(store, text: str, what: str) -> str:
    """A local user whose mailbox can take the mail: not an administrator,
    with Email permission."""
    name = (text or "").strip().lower()
    if "@" in name:
        local, _, domain = name.rpartition("@")
        if domain not in _local_domains(store):
            raise AccountInputError(f"{what} '{_shown(text)}': not one of this box's domains; "
                                    "give a local user")
        name = local
    try:
        name = local_name(name, what)
    except DirectoryError as error:
        raise AccountInputError(str(error)) from None
    row = store.db.execute("SELECT is_admin FROM accounts WHERE name = ?", [name]).fetchone()
    if row is None:
        raise AccountInputError(f"{what} '{name}': no such user (add it under Users & Groups: Users)")
    if row[0]:
        raise AccountInputError(f"{what} '{name}': an administrator has no mailbox; choose a mail user")
    if not groups.has_email(store, name):
        raise AccountInputError(f"{what} '{name}': has no Email permission (Users & Groups > Groups)")
    return name


def _local_domains(store) -> list[str]:
    return local_domains(store.snapshot())


def _shown(text: str) -> str:
    """A refused value as it may be echoed back: one line, bounded."""
    return "".join(c if c.isprintable() else "?" for c in str(text))[:80]


# ---- Mirrored: each user's ISP login ---------------------------------------------------
def set_isp_login(store, user: str, isp_login: str, isp_password: str | None = None,
                  actor: str = "system"):
    """Sets USER's ISP login; a None or empty password keeps the one stored
    (the page never shows it, so leaving it empty means "unchanged")."""
    name = mail_user(store, user, "User")
    isp_login = login(isp_login, "ISP Login")
    new_password = password(isp_password, "ISP Password") if isp_password else None
    with transaction(store.db):
        existing = store.db.execute("SELECT password FROM mail_isp_logins WHERE name = ?",
                                    [name]).fetchone()
        if new_password is None and (existing is None or not existing[0]):
            raise AccountInputError("ISP Password: must not be empty")
        store.db.execute(
            "INSERT INTO mail_isp_logins(name, login, password) VALUES(?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET login = excluded.login, password = excluded.password",
            [name, isp_login, new_password if new_password is not None else existing[0]])
        changed = "login and password" if new_password is not None else "login"
        record_change(store, actor, f"set ISP {changed} of {name} (Mirrored): {isp_login}")


def clear_isp_login(store, user: str, actor: str = "system"):
    name = (user or "").strip().lower()
    with transaction(store.db):
        if store.db.execute("DELETE FROM mail_isp_logins WHERE name = ?", [name]).rowcount == 0:
            raise AccountInputError(f"User '{_shown(name)}': has no ISP login")
        record_change(store, actor, f"clear ISP login of {name} (Mirrored)")


def isp_logins(store) -> list[IspLogin]:
    return [IspLogin(n, l, bool(p)) for n, l, p in store.db.execute(
        "SELECT name, login, password FROM mail_isp_logins ORDER BY name")]


def isp_login(store, user: str) -> IspLogin | None:
    row = store.db.execute("SELECT name, login, password FROM mail_isp_logins WHERE name = ?",
                           [(user or "").strip().lower()]).fetchone()
    return IspLogin(row[0], row[1], bool(row[2])) if row else None


def mirrored_accounts(store, settings) -> list[tuple[str, Account]]:
    """(user, Account) for every user with an ISP login, on the ISP Mail
    Server of the settings. Raises AccountInputError when that server is not set."""
    server = settings["email.isp_server"]
    if not server:
        raise AccountInputError("ISP Mail Server: not set (Email Server > Settings)")
    host_name, given_port = split_host_port(server)
    proto, tls = settings["email.isp_protocol"], settings["email.isp_tls"]
    found = []
    for name, isp_name, secret in store.db.execute(
            "SELECT name, login, password FROM mail_isp_logins ORDER BY name").fetchall():
        found.append((name, Account(
            name=f"mirrored:{name}", host=host_name,
            port=given_port or DEFAULT_PORTS[(proto, tls)], protocol=proto, tls=tls,
            verify=bool(settings["email.isp_tls_verify"]), login=isp_name, password=secret)))
    return found


# ---- Remote POP --------------------------------------------------------------------------------
_COLUMNS = "id, host, port, protocol, tls, verify, login, password, recipient, enabled"


def _remote(row) -> RemoteAccount:
    id_, host_, port_, proto, tls, verify, login_, secret, recipient, enabled = row
    return RemoteAccount(id_, host_, port_, proto, tls, bool(verify), login_, bool(secret),
                         recipient, bool(enabled))


def save_remote_account(store, *, host_name: str, port_text="", protocol_name: str = "pop3",
                        tls: str = "tls", verify: bool = True, login_name: str,
                        password_text: str | None, recipient: str, enabled: bool = True,
                        account_id: int | None = None, actor: str = "system") -> int:
    """Adds a Remote POP account, or replaces account_id's settings (an empty
    password then keeps the stored one). Returns the account's id."""
    proto, tls = protocol(protocol_name), tls_mode(tls)
    recipient_name = mail_user(store, recipient, "Local Recipient")
    values = [host(host_name), port(port_text, proto, tls), proto, tls, int(bool(verify)),
              login(login_name), recipient_name, int(bool(enabled))]
    new_password = password(password_text) if password_text else None
    with transaction(store.db):
        if account_id is None:
            if new_password is None:
                raise AccountInputError("Password: must not be empty")
            account_id = store.db.execute(
                "INSERT INTO mail_remote_accounts(host, port, protocol, tls, verify, login, "
                "recipient, enabled, password) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values + [new_password]).lastrowid
            verb = "add"
        else:
            before = remote_account(store, account_id)
            if before is None:
                raise AccountInputError(f"Remote POP account {account_id}: no such account")
            # The stored password goes only where it went before: a new server,
            # or a weaker connection to it, needs the password given again.
            moved = ((before.host, before.port, before.protocol, before.tls) !=
                     (values[0], values[1], values[2], values[3]) or
                     (before.verify and not values[4]))
            if moved and new_password is None:
                raise AccountInputError("Password: give it again when the server, port, "
                                        "protocol or connection security changes")
            store.db.execute(
                "UPDATE mail_remote_accounts SET host = ?, port = ?, protocol = ?, tls = ?, "
                "verify = ?, login = ?, recipient = ?, enabled = ? WHERE id = ?",
                values + [account_id])
            if new_password is not None:
                store.db.execute("UPDATE mail_remote_accounts SET password = ? WHERE id = ?",
                                 [new_password, account_id])
            verb = "modify"
        record_change(store, actor, f"{verb} Remote POP account {account_id}: {values[5]} at "
                                    f"{values[2]} {values[0]}:{values[1]} -> {recipient_name}")
    return account_id


def delete_remote_account(store, account_id, actor: str = "system"):
    number = _account_number(account_id)
    with transaction(store.db):
        if store.db.execute("DELETE FROM mail_remote_accounts WHERE id = ?", [number]).rowcount == 0:
            raise AccountInputError(f"Remote POP account {number}: no such account")
        # Its seen UIDs go too: a new account under a reused id starts afresh.
        store.db.execute("DELETE FROM mail_retrieval_seen WHERE account = ?", [f"remote:{number}"])
        store.db.execute("DELETE FROM mail_retrieval_state WHERE account = ?", [f"remote:{number}"])
        record_change(store, actor, f"delete Remote POP account {number}")


def _account_number(account_id) -> int:
    text = str(account_id).strip()
    if not (text.isascii() and text.isdigit()):
        raise AccountInputError(f"Remote POP account '{_shown(text)}': give the account's number")
    return int(text)


def remote_accounts(store) -> list[RemoteAccount]:
    return [_remote(row) for row in store.db.execute(
        f"SELECT {_COLUMNS} FROM mail_remote_accounts ORDER BY id")]


def remote_account(store, account_id) -> RemoteAccount | None:
    row = store.db.execute(f"SELECT {_COLUMNS} FROM mail_remote_accounts WHERE id = ?",
                           [_account_number(account_id)]).fetchone()
    return _remote(row) if row else None


def remote_fetch_accounts(store) -> list[tuple[str, Account]]:
    """(local recipient, Account) for every enabled Remote POP account."""
    return [(recipient, Account(name=f"remote:{id_}", host=host_, port=port_, protocol=proto,
                                tls=tls, verify=bool(verify), login=login_, password=secret))
            for id_, host_, port_, proto, tls, verify, login_, secret, recipient, _ in
            store.db.execute(f"SELECT {_COLUMNS} FROM mail_remote_accounts WHERE enabled = 1 "
                             "ORDER BY id").fetchall()]


def not_fetched(ctx, account_name: str, why: str) -> AccountResult:
    """An account left alone this run (its settings or user do not allow a
    fetch): said in its state row like any failure, for the pages."""
    result = AccountResult(account_name, ok=False, detail=why)
    seen.record_state(ctx.store, result, ctx.now)
    return result
