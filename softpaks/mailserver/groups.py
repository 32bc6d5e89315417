"""Users & Groups > Groups: named groups of users and the permissions the
group gives its members. A user has a permission when any of its groups
gives it. The one permission is Email: without it a user has no mailbox
(mail to it is unaddressable, POP3/IMAP refuse it, forwarders and
auto-responders do not run) but mail already in the mailbox is kept.

Groups marked "new users join" take every account made from then on (see
the triggers in tables.py); the migration that brought groups made one such
group, "default", with Email and every existing user in it."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.config import transaction

from .directory import (DirectoryError, change_verb, delete_with_members, is_user, kind_of, local_name,
                        record_change)


@dataclass(frozen=True)
class Group:
    name: str
    email: bool
    new_users: bool
    members: tuple


def _member(store, text: str, what: str) -> str:
    name = local_name(text, what)
    if not is_user(store, name):
        raise DirectoryError(f"{what} '{name}': no such user (add it with 'gatebox user add')")
    return name


def _known(store, name: str) -> bool:
    return store.db.execute("SELECT 1 FROM mail_groups WHERE name = ?", [name]).fetchone() is not None


def _require(store, name: str):
    if not _known(store, name):
        raise DirectoryError(f"group '{name}': no such group")


def _describe(email: bool, new_users: bool, members) -> str:
    return (f"email {'on' if email else 'off'}, new users {'join' if new_users else 'do not join'}, "
            f"members: {', '.join(members) or 'none'}")


def save_group(store, name: str, *, email: bool, new_users: bool = False, members=(),
               actor: str = "system", replacing: str | None = None, what: str = "group name",
               members_what: str = "member"):
    """Makes group NAME exactly this: a new group or (replacing) an existing
    one, perhaps renamed, in one transaction. `what` and `members_what` are
    the field names a refusal starts with."""
    name = local_name(name, what)
    chosen = list(dict.fromkeys(_member(store, m, members_what) for m in members))
    with transaction(store.db):
        if replacing:
            _require(store, replacing)
            store.db.execute("DELETE FROM mail_group_members WHERE grp = ?", [replacing])
            store.db.execute("DELETE FROM mail_groups WHERE name = ?", [replacing])
        if _known(store, name):
            raise DirectoryError(f"{what} '{name}': a group of this name already exists")
        store.db.execute("INSERT INTO mail_groups(name, email, new_users) VALUES(?, ?, ?)",
                         [name, int(email), int(new_users)])
        store.db.conn.executemany("INSERT INTO mail_group_members(grp, member) VALUES(?, ?)",
                                  [(name, member) for member in chosen])
        record_change(store, actor, f"{change_verb(replacing, name)} group {name}: "
                                    f"{_describe(email, new_users, chosen)}")


def set_permissions(store, name: str, *, email: bool | None = None, new_users: bool | None = None,
                    actor: str = "system"):
    """Changes what is given (None: leave it as it is); members stay."""
    with transaction(store.db):
        current = group(store, name)
        if current is None:
            raise DirectoryError(f"group '{name}': no such group")
        email = current.email if email is None else email
        new_users = current.new_users if new_users is None else new_users
        store.db.execute("UPDATE mail_groups SET email = ?, new_users = ? WHERE name = ?",
                         [int(email), int(new_users), name])
        record_change(store, actor, f"modify group {name}: "
                                    f"{_describe(email, new_users, current.members)}")


def join(store, name: str, users, actor: str = "system"):
    chosen = [_member(store, u, "member") for u in users]
    with transaction(store.db):
        _require(store, name)
        store.db.conn.executemany(
            "INSERT OR IGNORE INTO mail_group_members(grp, member) VALUES(?, ?)",
            [(name, member) for member in chosen])
        record_change(store, actor, f"add to group {name}: {', '.join(chosen)}")


def leave(store, name: str, users, actor: str = "system"):
    chosen = [local_name(u, "member") for u in users]
    with transaction(store.db):
        _require(store, name)
        store.db.conn.executemany("DELETE FROM mail_group_members WHERE grp = ? AND member = ?",
                                  [(name, member) for member in chosen])
        record_change(store, actor, f"remove from group {name}: {', '.join(chosen)}")


def delete_group(store, name: str, actor: str = "system"):
    delete_with_members(store, name, "mail_groups", "mail_group_members", "grp",
                        f"group '{name}': no such group", f"delete group {name}", actor)


def groups(store) -> list[Group]:
    members: dict[str, list] = {}
    for grp, member in store.db.execute(
            "SELECT grp, member FROM mail_group_members ORDER BY grp, member"):
        members.setdefault(grp, []).append(member)
    return [Group(name, bool(email), bool(new_users), tuple(members.get(name, ())))
            for name, email, new_users in store.db.execute(
                "SELECT name, email, new_users FROM mail_groups ORDER BY name")]


def group(store, name: str) -> Group | None:
    return next((g for g in groups(store) if g.name == name), None)


def has_email(store, user: str) -> bool:
    return store.db.execute(
        "SELECT 1 FROM mail_group_members m JOIN mail_groups g ON g.name = m.grp "
        "WHERE m.member = ? AND g.email = 1", [user.lower()]).fetchone() is not None


def users_without_email(store) -> list[str]:
    return [name for (name,) in store.db.execute(
        "SELECT name FROM accounts WHERE name NOT IN (SELECT m.member FROM mail_group_members m "
        "JOIN mail_groups g ON g.name = m.grp WHERE g.email = 1) ORDER BY name")]


def mail_kind(store, name: str) -> str | None:
    """What mail for NAME reaches, as directory.kind_of, except that a user
    without Email permission is no one: its name stays taken, its mail does not arrive."""
    kind = kind_of(store, name)
    if kind == "user" and not has_email(store, name):
        return None
    return kind
