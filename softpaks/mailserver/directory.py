"""Users & Groups for mail: aliases, distribution lists, forwarders and
auto-responders, and the local domains. Names share one namespace with the
product's user accounts (a name is a user, an alias or a list, never two).
Every change bumps the settings generation so running services see it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware import accounts
from firmware.config import transaction

from . import settings as keys

_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


class DirectoryError(ValueError):
    pass


@dataclass(frozen=True)
class Forwarder:
    name: str
    target: str
    keep_copy: bool


@dataclass(frozen=True)
class Responder:
    name: str
    subject: str
    message: str


# ---- names and targets ---------------------------------------------------------
def local_name(text: str, what: str) -> str:
    try:
        return accounts.validate_name(text)
    except accounts.AccountError as error:
        raise DirectoryError(str(error).replace("user name", what)) from None


def target(text: str, what: str) -> str:
    """A local name (bob) or a full address (jsmith@isp.net)."""
    text = text.strip()
    if "@" in text:
        if not _ADDRESS.match(text):
            raise DirectoryError(f"{what} '{text}': not an email address such as jsmith@isp.net")
        local, _, domain = text.rpartition("@")
        return f"{local}@{domain.lower()}"
    return local_name(text, what)


def is_user(store, name: str) -> bool:
    return store.db.execute("SELECT 1 FROM accounts WHERE name = ?", [name]).fetchone() is not None


def kind_of(store, name: str) -> str | None:
    """'user', 'alias' or 'list' for a taken name, else None."""
    if is_user(store, name):
        return "user"
    if store.db.execute("SELECT 1 FROM mail_aliases WHERE name = ?", [name]).fetchone():
        return "alias"
    if store.db.execute("SELECT 1 FROM mail_lists WHERE name = ?", [name]).fetchone():
        return "list"
    return None


def _free(store, name: str, what: str):
    taken = kind_of(store, name)
    if taken:
        raise DirectoryError(f"{what} '{name}': the name is already used by a {taken}")


def existing_user(store, name: str) -> str:
    name = local_name(name, "user")
    if not is_user(store, name):
        raise DirectoryError(f"user '{name}': no such user (add it with 'gatebox user add')")
    return name


def change_verb(replacing: str | None, name: str) -> str:
    if not replacing:
        return "add"
    return "modify" if replacing == name else f"rename {replacing} to"


def record_change(store, actor: str, what: str):
    store.audit(actor, what)
    store._bump_generation()


# ---- aliases -----------------------------------------------------------------------
def add_alias(store, name: str, to: str, actor: str = "system", replacing: str | None = None):
    """`replacing` names an alias this one takes the place of (a Modify in the
    web admin): it goes in the same transaction, so a refused change keeps it."""
    name, to = local_name(name, "alias"), target(to, "alias target")
    with transaction(store.db):
        if replacing and store.db.execute("DELETE FROM mail_aliases WHERE name = ?",
                                          [replacing]).rowcount == 0:
            raise DirectoryError(f"alias '{replacing}': no such alias")
        _free(store, name, "alias")
        store.db.execute("INSERT INTO mail_aliases(name, target) VALUES(?, ?)", [name, to])
        record_change(store, actor, f"{change_verb(replacing, name)} alias {name} -> {to}")


def delete_alias(store, name: str, actor: str = "system"):
    with transaction(store.db):
        if store.db.execute("DELETE FROM mail_aliases WHERE name = ?", [name]).rowcount == 0:
            raise DirectoryError(f"alias '{name}': no such alias")
        record_change(store, actor, f"delete alias {name}")


def aliases(store) -> dict[str, str]:
    return dict(store.db.execute("SELECT name, target FROM mail_aliases ORDER BY name"))


# ---- distribution lists --------------------------------------------------------------
def add_list(store, name: str, members, actor: str = "system"):
    """Creates the list, or adds members to an existing one."""
    name = local_name(name, "distribution list")
    parsed = [target(m, "list member") for m in members]
    if not parsed:
        raise DirectoryError(f"distribution list '{name}': give at least one member")
    with transaction(store.db):
        if kind_of(store, name) != "list":
            _free(store, name, "distribution list")
            store.db.execute("INSERT INTO mail_lists(name) VALUES(?)", [name])
        for member in parsed:
            store.db.execute("INSERT OR IGNORE INTO mail_list_members(list, member) VALUES(?, ?)",
                             [name, member])
        record_change(store, actor, f"add to list {name}: {', '.join(parsed)}")


def save_list(store, name: str, members, actor: str = "system", replacing: str | None = None):
    """Makes list NAME hold exactly MEMBERS: a new list, or (replacing) an
    existing one, perhaps renamed, in one transaction."""
    name = local_name(name, "distribution list")
    parsed = list(dict.fromkeys(target(m, "list member") for m in members))
    if not parsed:
        raise DirectoryError(f"distribution list '{name}': give at least one member")
    with transaction(store.db):
        if replacing:
            store.db.execute("DELETE FROM mail_list_members WHERE list = ?", [replacing])
            if store.db.execute("DELETE FROM mail_lists WHERE name = ?", [replacing]).rowcount == 0:
                raise DirectoryError(f"distribution list '{replacing}': no such list")
        _free(store, name, "distribution list")
        store.db.execute("INSERT INTO mail_lists(name) VALUES(?)", [name])
        for member in parsed:
            store.db.execute("INSERT INTO mail_list_members(list, member) VALUES(?, ?)",
                             [name, member])
        record_change(store, actor, f"{change_verb(replacing, name)} list {name}: {', '.join(parsed)}")


def remove_list_members(store, name: str, members, actor: str = "system"):
    with transaction(store.db):
        for member in members:
            store.db.execute("DELETE FROM mail_list_members WHERE list = ? AND member = ?",
                             [name, target(member, "list member")])
        record_change(store, actor, f"remove from list {name}: {', '.join(members)}")


def delete_list(store, name: str, actor: str = "system"):
    delete_with_members(store, name, "mail_lists", "mail_list_members", "list",
                        f"distribution list '{name}': no such list", f"delete list {name}", actor)


def delete_with_members(store, name: str, table: str, members_table: str, owner_column: str,
                        missing: str, what: str, actor: str):
    """Deletes a list or group and its members in one transaction; foreign
    keys are not enforced on this database, so members go by hand."""
    with transaction(store.db):
        store.db.execute(f"DELETE FROM {members_table} WHERE {owner_column} = ?", [name])
        if store.db.execute(f"DELETE FROM {table} WHERE name = ?", [name]).rowcount == 0:
            raise DirectoryError(missing)
        record_change(store, actor, what)


def lists(store) -> dict[str, list[str]]:
    found = {name: [] for (name,) in store.db.execute("SELECT name FROM mail_lists ORDER BY name")}
    for name, member in store.db.execute(
            "SELECT list, member FROM mail_list_members ORDER BY list, member"):
        found.setdefault(name, []).append(member)
    return found


def list_members(store, name: str) -> list[str] | None:
    if not store.db.execute("SELECT 1 FROM mail_lists WHERE name = ?", [name]).fetchone():
        return None
    return [m for (m,) in store.db.execute(
        "SELECT member FROM mail_list_members WHERE list = ? ORDER BY member", [name])]


# ---- forwarders -----------------------------------------------------------------------
def set_forwarder(store, name: str, to: str, keep_copy: bool = False, actor: str = "system",
                  replacing: str | None = None):
    """`replacing`: the user whose forwarder this one takes the place of."""
    to = target(to, "forwarder target")
    with transaction(store.db):
        name = existing_user(store, name)
        if replacing and replacing != name:
            store.db.execute("DELETE FROM mail_forwarders WHERE name = ?", [replacing])
        store.db.execute("INSERT INTO mail_forwarders(name, target, keep_copy) VALUES(?, ?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET target = excluded.target, "
                         "keep_copy = excluded.keep_copy", [name, to, int(keep_copy)])
        record_change(store, actor, f"forward {name} -> {to}{' (keep a local copy)' if keep_copy else ''}")


def delete_forwarder(store, name: str, actor: str = "system"):
    with transaction(store.db):
        if store.db.execute("DELETE FROM mail_forwarders WHERE name = ?", [name]).rowcount == 0:
            raise DirectoryError(f"forwarder '{name}': user {name} has no forwarder")
        record_change(store, actor, f"delete forwarder {name}")


def forwarders(store) -> list[Forwarder]:
    return [Forwarder(n, t, bool(k)) for n, t, k in store.db.execute(
        "SELECT name, target, keep_copy FROM mail_forwarders ORDER BY name")]


def forwarder(store, name: str) -> Forwarder | None:
    row = store.db.execute("SELECT name, target, keep_copy FROM mail_forwarders WHERE name = ?",
                           [name]).fetchone()
    return Forwarder(row[0], row[1], bool(row[2])) if row else None


# ---- auto-responders -----------------------------------------------------------------------
def set_responder(store, name: str, message: str, subject: str = "", actor: str = "system",
                  replacing: str | None = None):
    """`replacing`: the user whose auto-responder this one takes the place of."""
    if not message.strip():
        raise DirectoryError("responder message: must not be empty")
    if "\n" in subject or "\r" in subject or len(subject) > 200:
        raise DirectoryError("responder subject: one line of at most 200 characters")
    with transaction(store.db):
        name = existing_user(store, name)
        if replacing and replacing != name:
            store.db.execute("DELETE FROM mail_responders WHERE name = ?", [replacing])
        store.db.execute("INSERT INTO mail_responders(name, subject, message) VALUES(?, ?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET subject = excluded.subject, "
                         "message = excluded.message", [name, subject, message])
        # A new message is news to everyone: answer senders again.
        store.db.execute("DELETE FROM mail_responder_log WHERE name = ?", [name])
        record_change(store, actor, f"set auto-responder of {name}")


def clear_responder(store, name: str, actor: str = "system"):
    with transaction(store.db):
        if store.db.execute("DELETE FROM mail_responders WHERE name = ?", [name]).rowcount == 0:
            raise DirectoryError(f"auto-responder '{name}': user {name} has no auto-responder")
        record_change(store, actor, f"clear auto-responder of {name}")


def responders(store) -> list[Responder]:
    return [Responder(*row) for row in store.db.execute(
        "SELECT name, subject, message FROM mail_responders ORDER BY name")]


def responder(store, name: str) -> Responder | None:
    row = store.db.execute("SELECT name, subject, message FROM mail_responders WHERE name = ?",
                           [name]).fetchone()
    return Responder(*row) if row else None


# ---- local domains -----------------------------------------------------------------------
def local_domains(settings) -> list[str]:
    """The Domain Name first, then the further local domains."""
    extra = [d for d in settings[keys.LOCAL_DOMAINS].split(",") if d]
    return [settings["email.domain"]] + [d for d in extra if d != settings["email.domain"]]


def add_domain(store, domain: str, actor: str = "system"):
    current = [d for d in store.get(keys.LOCAL_DOMAINS).split(",") if d]
    store.set(keys.LOCAL_DOMAINS, ",".join(current + [domain]), actor=actor)


def delete_domain(store, domain: str, actor: str = "system"):
    domain = domain.strip().lower()
    current = [d for d in store.get(keys.LOCAL_DOMAINS).split(",") if d]
    if domain == store.get("email.domain"):
        raise DirectoryError(f"domain '{domain}': it is the Domain Name; change that with "
                             "'gatebox config set email.domain'")
    if domain not in current:
        raise DirectoryError(f"domain '{domain}': not a local domain")
    store.set(keys.LOCAL_DOMAINS, ",".join(d for d in current if d != domain), actor=actor)
