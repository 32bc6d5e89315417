"""The one limit on password guessing, for SMTP AUTH, POP3/IMAP (Dovecot's
checkpassword program) and the web admin's sign-in.

Failures are counted per client and per account, in the settings database,
so a restart (or a new checkpassword process for every login) forgives
nothing:

- a client (an IPv4 address, or an IPv6 /64, since one host holds a whole
  /64) with CLIENT_FAILURES failures in CLIENT_WINDOW is locked out for a
  backoff period that doubles with each lockout inside a day; while locked
  it is refused even with the right password, and other clients are not
  affected;
- an account with ACCOUNT_FAILURES failures from ACCOUNT_CLIENTS or more
  clients in ACCOUNT_WINDOW (a guesser spread over many addresses) is
  locked for ACCOUNT_LOCK, or until an administrator unlocks it.

Mail logins and web sign-ins are counted apart, in two realms: administrators
are not mail accounts, so no mail guess can find an administrator's password,
and a mail client retrying a stale password must not keep its office's
administrator out of the web admin. SMTP, POP3 and IMAP share the mail realm,
so switching protocols buys a guesser nothing.

Every lockout is written to the audit log."""

from __future__ import annotations

import enum
import ipaddress
import time
from dataclasses import dataclass

from firmware.config import transaction

MAIL = "mail"
ADMIN = "admin"
REALMS = (MAIL, ADMIN)


@dataclass(frozen=True)
class Limits:
    client_failures: int = 5
    client_window: float = 15 * 60
    client_lock: float = 15 * 60          # the first lockout; each further one within a day doubles it
    account_failures: int = 20
    account_clients: int = 3
    account_window: float = 60 * 60
    account_lock: float = 60 * 60
    longest_lock: float = 24 * 60 * 60
    strikes_remembered: float = 24 * 60 * 60


@dataclass(frozen=True)
class Lockout:
    realm: str
    kind: str            # "client" | "account"
    key: str             # the client's address or /64, or the account name
    since: float
    until: float
    reason: str

    def seconds_left(self, now: float | None = None) -> int:
        return max(1, int(self.until - (time.time() if now is None else now) + 0.999))

    def describe(self, now: float | None = None) -> str:
        minutes = -(-self.seconds_left(now) // 60)
        who = f"from {self.key}" if self.kind == "client" else f"for the account {self.key}"
        return f"too many failed logins {who}; try again in {minutes} minute{'s' * (minutes != 1)}"


class Outcome(enum.Enum):
    OK = "ok"
    WRONG = "wrong"          # wrong name or password (or no such account)
    LOCKED = "locked"        # refused without looking at the password


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    lockout: Lockout | None = None     # why LOCKED, or the lockout this failure caused


def client_key(address: str) -> str:
    """What a client is counted as: an IPv4 address, or the /64 of an IPv6
    one (an IPv4-mapped IPv6 address counts as its IPv4 address)."""
    text = (address or "").strip().split("%")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text or "unknown"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def account_key(name: str) -> str:
    return (name or "").strip().lower()[:128]


class LoginLimiter:
    def __init__(self, limits: Limits = Limits(), clock=time.time):
        self.limits = limits
        self.clock = clock

    # ---- the whole sign-in ---------------------------------------------------
    def attempt(self, store, realm: str, client: str, name: str, password_ok, service: str) -> Attempt:
        """Refuse a locked client or account before its password is looked
        at; otherwise ask password_ok() and count what it says."""
        locked = self.refusal(store, realm, client, name)
        if locked is not None:
            return Attempt(Outcome.LOCKED, locked)
        if password_ok():
            self.succeeded(store, realm, client, name)
            return Attempt(Outcome.OK)
        return Attempt(Outcome.WRONG, self.failed(store, realm, client, name, service))

    # ---- its parts -------------------------------------------------------------
    def refusal(self, store, realm: str, client: str, name: str) -> Lockout | None:
        now = self.clock()
        rows = store.db.execute(
            "SELECT realm, kind, key, since, until, reason FROM login_locks WHERE realm = ? AND "
            "until > ? AND ((kind = 'client' AND key = ?) OR (kind = 'account' AND key = ?)) "
            "ORDER BY until DESC LIMIT 1", [realm, now, client_key(client), account_key(name)]).fetchall()
        return Lockout(*rows[0]) if rows else None

    def failed(self, store, realm: str, client: str, name: str, service: str) -> Lockout | None:
        """Count one failure; the lockout it caused, if any."""
        limits, now = self.limits, self.clock()
        who, account = client_key(client), account_key(name)
        with transaction(store.db):
            store.db.execute("DELETE FROM login_failures WHERE at < ?",
                             [now - max(limits.client_window, limits.account_window)])
            store.db.execute("INSERT INTO login_failures(at, realm, client, account, service) "
                             "VALUES(?, ?, ?, ?, ?)", [now, realm, who, account, service])
            caused = None
            # A lockout that ended starts the client's count again; its
            # failures still count against the accounts it tried.
            ended = store.db.execute("SELECT until FROM login_locks WHERE realm = ? AND "
                                     "kind = 'client' AND key = ?", [realm, who]).fetchone()
            since = max(now - limits.client_window, ended[0] if ended else 0)
            count = store.db.execute(
                "SELECT COUNT(*) FROM login_failures WHERE realm = ? AND client = ? AND at > ?",
                [realm, who, since]).fetchone()[0]
            if count >= limits.client_failures:
                caused = self._lock(store, realm, "client", who, limits.client_lock, now,
                                    f"{count} failed {service} logins (last as {account or '?'})")
            failures, clients = store.db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT client) FROM login_failures "
                "WHERE realm = ? AND account = ? AND at > ?",
                [realm, account, now - limits.account_window]).fetchone()
            if account and failures >= limits.account_failures and clients >= limits.account_clients:
                caused = self._lock(store, realm, "account", account, limits.account_lock, now,
                                    f"{failures} failed logins from {clients} clients") or caused
        return caused

    def succeeded(self, store, realm: str, client: str, name: str):
        """The right password forgives this client's failures as this account
        only: a guesser who owns one account cannot wipe its count with it.
        Nearly every login has nothing to forgive: it is then a read, not a
        durable write that waits for the disk and the other processes' lock."""
        who = [realm, client_key(client), account_key(name)]
        if store.db.execute("SELECT 1 FROM login_failures WHERE realm = ? AND client = ? AND "
                            "account = ? LIMIT 1", who).fetchone() is None:
            return
        with transaction(store.db):
            store.db.execute("DELETE FROM login_failures WHERE realm = ? AND client = ? AND account = ?",
                             who)

    def unlock_account(self, store, name: str, actor: str) -> bool:
        """Lift an account's lockout (every realm) and forget its failures.
        False when it was not locked."""
        account, now = account_key(name), self.clock()
        with transaction(store.db):
            lifted = store.db.execute(
                "DELETE FROM login_locks WHERE kind = 'account' AND key = ? AND until > ?",
                [account, now]).rowcount
            store.db.execute("DELETE FROM login_failures WHERE account = ?", [account])
            if lifted:
                store.audit(actor, f"unlock account {account}", "locked", "unlocked")
        return bool(lifted)

    def unlock_client(self, store, address: str, actor: str) -> bool:
        """Lift a client's lockout (an IPv4 address, or the /64 an IPv6 address
        is in; every realm) and forget its failures. False when it was not locked."""
        client, now = client_key(address), self.clock()
        with transaction(store.db):
            lifted = store.db.execute(
                "DELETE FROM login_locks WHERE kind = 'client' AND key = ? AND until > ?",
                [client, now]).rowcount
            store.db.execute("DELETE FROM login_failures WHERE client = ?", [client])
            if lifted:
                store.audit(actor, f"unlock client {client}", "locked", "unlocked")
        return bool(lifted)

    def locked_accounts(self, store) -> dict[str, Lockout]:
        now = self.clock()
        return {row[2]: Lockout(*row) for row in store.db.execute(
            "SELECT realm, kind, key, since, until, reason FROM login_locks "
            "WHERE kind = 'account' AND until > ? ORDER BY until", [now])}

    def lockouts(self, store) -> list[Lockout]:
        now = self.clock()
        return [Lockout(*row) for row in store.db.execute(
            "SELECT realm, kind, key, since, until, reason FROM login_locks WHERE until > ? "
            "ORDER BY until", [now])]

    def _lock(self, store, realm, kind, key, base, now, reason) -> Lockout | None:
        """Inside the caller's transaction. None when already locked."""
        limits = self.limits
        row = store.db.execute("SELECT until, strikes FROM login_locks WHERE realm = ? AND kind = ? "
                               "AND key = ?", [realm, kind, key]).fetchone()
        if row is not None and row[0] > now:
            return None
        strikes = row[1] + 1 if row is not None and now - row[0] < limits.strikes_remembered else 1
        until = now + min(limits.longest_lock, base * 2 ** (strikes - 1))
        store.db.execute("INSERT OR REPLACE INTO login_locks(realm, kind, key, since, until, strikes, "
                         "reason) VALUES(?, ?, ?, ?, ?, ?, ?)",
                         [realm, kind, key, now, until, strikes, reason])
        minutes = round((until - now) / 60)
        store.audit(f"{key} ({realm} login)" if kind == "client" else "login limiter",
                    f"lockout: {realm} logins {'from ' + key if kind == 'client' else 'as ' + key}",
                    reason, f"locked for {minutes} minutes")
        return Lockout(realm, kind, key, now, until, reason)


shared = LoginLimiter()
