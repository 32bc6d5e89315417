"""Verify Recipient Email Account Exists Using LDAP: the address list of
the internal directory (Active Directory or any LDAP server), copied into
SQLite at the Refresh interval so that RCPT never waits for the directory.

A sync reads `mail` and the SMTP values of `proxyAddresses` of every entry
under the base DN, then replaces the whole list in one transaction. A sync
that fails keeps the previous list: a directory down for an hour must not
turn every recipient into an unknown one. The ldap_sync row (one row, id 1)
says when it was last tried, when it last worked, how many addresses it
holds and the last error, for the page and for is_due().

ldap3 is imported by the functions that talk to the directory, not with the
module: smtpd and the web admin load this module whether or not the office
uses LDAP, and ldap3's hundred modules cost each of them about 10 MB."""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from dataclasses import dataclass


from firmware.config import Store, transaction
from firmware.config.types import Invalid, is_hostname, split_host_port
from firmware.mail import server_type
from firmware.mail.addresses import forbidden_characters, parse

log = logging.getLogger("gatebox.ldap")

SEARCH_FILTER = "(|(mail=*)(proxyAddresses=*))"
ATTRIBUTES = ("mail", "proxyAddresses")
PAGE_SIZE = 500                 # below Active Directory's MaxPageSize (1000)
MAX_ADDRESSES = 200_000         # far beyond an office; bounds memory and the table
MAX_ADDRESS_LENGTH = 254        # RFC 5321's path limit less the brackets
MAX_ERROR = 300
CHECK_EVERY = 30.0              # seconds between is_due() looks in keep_synced
RETRY_AFTER_FAILURE = 300.0     # a failed sync is tried again after at most 5 minutes
DEFAULT_REFRESH_MINUTES = 60
PORTS = {"ldaps": 636, "starttls": 389, "none": 389}


@dataclass(frozen=True)
class SyncStatus:
    attempted: float | None     # epoch seconds of the last try, None when never
    succeeded: float | None     # of the last try that worked
    count: int                  # addresses in the list
    error: str                  # of the last try; "" when it worked in full


NEVER = SyncStatus(None, None, 0, "")


class SyncFailed(Exception):
    """A server or setting problem, with the sentence the page shows."""


# ---- settings -------------------------------------------------------------
def base_dn(domain: str) -> str:
    """The search base: a DN as given, or an AD domain turned into dc=... parts."""
    text = str(domain or "").strip()
    if not text:
        raise ValueError("no LDAP Domain is set: give a base DN such as dc=example,dc=com "
                         "or an Active Directory domain such as example.com")
    if forbidden_characters(text.replace(" ", "")):
        raise ValueError(f"the LDAP Domain {text!r} holds control characters")
    if "=" in text:
        from ldap3.core import exceptions as ldap_errors
        from ldap3.utils.dn import parse_dn
        try:
            parse_dn(text)
        except ldap_errors.LDAPInvalidDnError:
            raise ValueError(f"the LDAP Domain {text!r} is not a valid DN "
                             "(e.g. ou=people,dc=example,dc=com)") from None
        return text
    name = text.rstrip(".")
    if " " in name or not is_hostname(name):
        raise ValueError(f"the LDAP Domain {text!r} is neither a base DN "
                         "(dc=example,dc=com) nor a domain name (example.com)")
    return ",".join(f"dc={label}" for label in name.lower().split("."))


def _endpoint(settings) -> tuple[str, int, str]:
    """(host, port, security) from email.ldap_server and email.ldap_security."""
    text = str(settings["email.ldap_server"] or "").strip()
    if not text:
        raise SyncFailed("no LDAP Server is set")
    security = str(settings["email.ldap_security"] or "starttls").lower()
    if security not in PORTS:
        security = "starttls"
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme.lower() == "ldaps":
            security = "ldaps"
        elif scheme.lower() != "ldap":
            raise SyncFailed(f"the LDAP Server {text!r} is not host[:port] or ldap[s]://host[:port]")
        text = rest.rstrip("/")
    try:
        host, port = split_host_port(text, PORTS[security])
    except Invalid:
        raise SyncFailed(f"the LDAP Server {text!r} has a port that is not a number") from None
    if not host or not 1 <= port <= 65535:
        raise SyncFailed(f"the LDAP Server {text!r} is not host[:port]")
    return host, port, security


def _refresh_seconds(settings) -> float:
    try:
        minutes = int(str(settings["email.ldap_refresh"]).strip())
    except (KeyError, TypeError, ValueError):
        minutes = DEFAULT_REFRESH_MINUTES
    return (minutes if minutes > 0 else DEFAULT_REFRESH_MINUTES) * 60.0


# ---- what the directory says ----------------------------------------------
def clean_address(value) -> str | None:
    """A directory value as a list entry (lower case), or None when it is not
    a plain local@hostname address that could ever be an envelope recipient."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not text or len(text) > MAX_ADDRESS_LENGTH or forbidden_characters(text) or "<" in text:
        return None
    address = parse(text)
    if (address.quoted or address.source_route or not address.local or not address.domain
            or address.routing_characters or address.address != text
            or not is_hostname(address.domain)):
        return None
    return text


def proxy_address(value) -> str | None:
    """The address of an AD proxyAddresses value when it is an SMTP one
    ("SMTP:" the primary, "smtp:" the others); X400:, X500:, SIP: ... are not mail."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    kind, sep, rest = value.strip().partition(":")
    if not sep or kind.lower() != "smtp":
        return None
    return clean_address(rest)


def addresses_of(attributes: dict) -> list[str]:
    """The clean addresses of one entry's raw attributes."""
    found = []
    for name, values in (attributes or {}).items():
        reader = {"mail": clean_address, "proxyaddresses": proxy_address}.get(str(name).lower())
        if reader is None or not isinstance(values, (list, tuple)):
            continue
        found += [a for a in map(reader, values) if a]
    return found


# ---- the sync ---------------------------------------------------------------
def _reason(error: Exception) -> str:
    """The innermost cause of an ldap3 error, without its wrapping."""
    args = getattr(error, "args", ())
    # LDAPSocketOpenError carries [(exception, address), ...] of every try.
    if len(args) > 1 and isinstance(args[1], list) and args[1]:
        first = args[1][-1]
        if isinstance(first, tuple) and first and isinstance(first[0], Exception):
            return _reason(first[0])
    first = args[0] if args else str(error)
    while isinstance(first, (tuple, list)) and first:
        first = first[0]
    text = str(first)
    for wrapping in ("socket connection error while opening: ", "socket ssl wrapping error: ",
                     "error receiving data: ", "unable to open socket"):
        if text.startswith(wrapping) and len(text) > len(wrapping):
            text = text[len(wrapping):]
    return text.strip() or type(error).__name__


def _timed_out(error: Exception) -> bool:
    from ldap3.core import exceptions as ldap_errors
    return isinstance(error, ldap_errors.LDAPResponseTimeoutError) or \
        "timed out" in _reason(error).lower()


def _read_directory(settings, timeout: float) -> tuple[set[str], bool]:
    """(addresses, whether the list was capped) or SyncFailed."""
    import ldap3
    from ldap3.core import exceptions as ldap_errors
    host, port, security = _endpoint(settings)
    try:
        search_base = base_dn(settings["email.ldap_domain"])
    except ValueError as error:
        raise SyncFailed(str(error)) from None
    where = f"{host}:{port}"
    # ldap3 packs the receive timeout into SO_RCVTIMEO as whole seconds.
    receive_timeout = max(1, math.ceil(timeout))
    # Internal directories mostly have certificates from a private CA the box
    # does not know yet, so the certificate is not checked: the connection is
    # encrypted but not authenticated. A CA upload setting would close this.
    tls = ldap3.Tls(validate=ssl.CERT_NONE) if security in ("ldaps", "starttls") else None
    server = ldap3.Server(host, port=port, use_ssl=security == "ldaps", tls=tls,
                          get_info=ldap3.NONE, connect_timeout=timeout)
    if settings["email.ldap_auth"]:
        conn = ldap3.Connection(server, user=str(settings["email.ldap_login"] or ""),
                                password=str(settings["email.ldap_password"] or ""),
                                authentication=ldap3.SIMPLE, auto_bind=ldap3.AUTO_BIND_NONE,
                                receive_timeout=receive_timeout, auto_referrals=False,
                                raise_exceptions=True, read_only=True)
    else:
        conn = ldap3.Connection(server, authentication=ldap3.ANONYMOUS,
                                auto_bind=ldap3.AUTO_BIND_NONE, receive_timeout=receive_timeout,
                                auto_referrals=False, raise_exceptions=True, read_only=True)
    stage = "connect"
    try:
        try:
            conn.open()
            if security == "starttls":
                stage = "starttls"
                if not conn.start_tls():
                    raise SyncFailed(f"StartTLS refused by {where}: "
                                     f"{conn.result.get('description') or 'no reason given'}")
            stage = "bind"
            if not conn.bind():
                raise SyncFailed(f"bind refused: {conn.result.get('description') or 'no reason given'}")
            stage = "search"
            found: set[str] = set()
            capped = False
            entries = conn.extend.standard.paged_search(
                search_base, SEARCH_FILTER, search_scope=ldap3.SUBTREE,
                attributes=list(ATTRIBUTES), paged_size=PAGE_SIZE, generator=True)
            for entry in entries:
                # Active Directory adds continuation references (searchResRef) to
                # other partitions: those are not followed.
                if entry.get("type") != "searchResEntry":
                    continue
                for address in addresses_of(entry.get("raw_attributes")):
                    if address in found:
                        continue
                    if len(found) >= MAX_ADDRESSES:
                        capped = True
                        break
                    found.add(address)
                if capped:
                    break
            return found, capped
        except ldap_errors.LDAPOperationResult as error:
            description = error.description or _reason(error)
            if stage == "bind":
                raise SyncFailed(f"bind refused: {description}") from None
            if stage == "starttls":
                raise SyncFailed(f"StartTLS refused by {where}: {description}") from None
            raise SyncFailed(f"search under {search_base} failed: {description}") from None
        except ldap_errors.LDAPException as error:
            if _timed_out(error):
                raise SyncFailed(f"no answer from {where} within {timeout:g} s "
                                 f"(at {stage})") from None
            if stage == "connect" and "ssl" in _reason(error).lower():
                raise SyncFailed(f"TLS handshake with {where} failed: {_reason(error)}") from None
            if stage == "connect":
                raise SyncFailed(f"cannot connect to {where}: {_reason(error)}") from None
            if stage == "starttls":
                raise SyncFailed(f"StartTLS with {where} failed: {_reason(error)}") from None
            raise SyncFailed(f"{where} failed at {stage}: {_reason(error)}") from None
        except OSError as error:
            raise SyncFailed(f"cannot connect to {where}: {error}") from None
    finally:
        try:
            conn.unbind()
        except Exception:  # noqa: BLE001 (closing a broken connection must not hide the result)
            pass


def sync(store, settings=None, timeout: float = 10.0) -> SyncStatus:
    """Read the directory now. Never raises for a server or setting problem:
    the error is recorded and returned, and the previous list stays."""
    settings = store.snapshot() if settings is None else settings
    attempted = time.time()
    try:
        found, capped = _read_directory(settings, timeout)
    except SyncFailed as failure:
        _record_failure(store, attempted, str(failure))
        return status(store)
    if not found:
        # A wrong base DN or rules that hide the mail attributes look like an
        # empty directory; taken as the truth, every recipient would be refused.
        _record_failure(store, attempted, "the directory answered with no addresses; the "
                                          "previous list stays (check Domain and the login's "
                                          "read rights)")
        return status(store)
    note = (f"the directory holds more than {MAX_ADDRESSES} addresses; only "
            f"{MAX_ADDRESSES} were kept" if capped else "")
    with transaction(store.db):
        store.db.execute("DELETE FROM ldap_addresses")
        store.db.conn.executemany("INSERT OR IGNORE INTO ldap_addresses(address) VALUES (?)",
                                  ((address,) for address in sorted(found)))
        store.db.execute(
            "INSERT INTO ldap_sync(id, attempted, succeeded, count, error) VALUES (1, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET attempted = excluded.attempted, "
            "succeeded = excluded.succeeded, count = excluded.count, error = excluded.error",
            [attempted, attempted, len(found), note])
    return status(store)


def _record_failure(store, attempted: float, error: str):
    with transaction(store.db):
        store.db.execute(
            "INSERT INTO ldap_sync(id, attempted, error) VALUES (1, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET attempted = excluded.attempted, error = excluded.error",
            [attempted, error[:MAX_ERROR]])


def request_update(store, now: float | None = None):
    """Update Now: the next keep_synced round syncs whatever the interval."""
    with transaction(store.db):
        store.db.execute(
            "INSERT INTO ldap_sync(id, requested) VALUES (1, ?) "
            "ON CONFLICT(id) DO UPDATE SET requested = excluded.requested",
            [time.time() if now is None else now])


# ---- reading the row ----------------------------------------------------------
def _time(value) -> float | None:
    # The row is input like any other: what this module did not write reads as never.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def _row(store) -> dict | None:
    return next(iter(store.db.query(
        "SELECT attempted, succeeded, count, error, requested FROM ldap_sync WHERE id = 1")), None)


def status(store) -> SyncStatus:
    row = _row(store)
    if row is None:
        return NEVER
    count = row["count"]
    count = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else 0
    error = row["error"] if isinstance(row["error"], str) else ""
    return SyncStatus(_time(row["attempted"]), _time(row["succeeded"]), count, error[:MAX_ERROR])


def knows(store, address: str) -> bool | None:
    """Whether the directory has this address; None when no sync ever worked."""
    if status(store).succeeded is None:
        return None
    key = str(address or "").strip().lower()
    return store.db.execute("SELECT 1 FROM ldap_addresses WHERE address = ?", [key]).fetchone() \
        is not None


def is_due(store, settings, now: float) -> bool:
    row = _row(store)
    attempted = _time(row["attempted"]) if row else None
    if attempted is None or attempted > now:
        return True
    requested = _time(row["requested"])
    if requested is not None and requested > attempted:
        return True
    interval = _refresh_seconds(settings)
    succeeded = _time(row["succeeded"])
    if succeeded is None or succeeded < attempted:
        interval = min(interval, RETRY_AFTER_FAILURE)
    return now - attempted >= interval


# ---- the smtpd process's loop ---------------------------------------------------
def wanted(settings) -> bool:
    return bool(settings["email.verify_recipient_ldap"]) and \
        server_type.in_effect(settings) == "relay"


def _sync_on_own_connection(data_dir, settings, timeout: float) -> SyncStatus:
    # The thread gets its own SQLite connection: the event loop's may be in a
    # transaction of its own at the same moment.
    store = Store(data_dir)
    try:
        return sync(store, settings, timeout)
    finally:
        store.close()


async def keep_synced(store, current_settings, stop_event: asyncio.Event,
                      every: float = CHECK_EVERY, timeout: float = 10.0):
    """Sync whenever due while verification by LDAP is on, until stop_event."""
    while not stop_event.is_set():
        try:
            settings = current_settings()
            if wanted(settings) and is_due(store, settings, time.time()):
                result = await asyncio.to_thread(_sync_on_own_connection, store.data_dir,
                                                 settings, timeout)
                if result.succeeded is not None and result.succeeded == result.attempted:
                    log.info("LDAP address list read: %d addresses%s", result.count,
                             f" ({result.error})" if result.error else "")
                else:
                    log.warning("LDAP sync failed, the previous list (%d addresses) stays: %s",
                                result.count, result.error)
        except Exception:  # noqa: BLE001 (a bug here must not stop the next round)
            log.exception("LDAP sync round failed")
        try:
            await asyncio.wait_for(stop_event.wait(), every)
        except asyncio.TimeoutError:
            pass
