"""Turns one local recipient into what must happen to the message:
mailboxes to write, remote addresses to forward to, users whose
auto-responder may answer. Aliases and distribution lists are followed
recursively; a name met twice is not followed again, so an alias cycle
inside the box ends instead of spinning."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import directory, groups, settings as keys

MAX_DEPTH = 20


class Unknown(Exception):
    """No user with Email permission, alias, list or forwarder answers to
    this address (Reject)."""


@dataclass
class Plan:
    mailboxes: list = field(default_factory=list)   # (user, list name or "")
    remote: list = field(default_factory=list)      # addresses off the box
    responders: list = field(default_factory=list)  # users addressed directly
    lists: list = field(default_factory=list)       # distribution lists passed through

    def add_mailbox(self, user: str, via_list: str):
        if user not in [u for u, _ in self.mailboxes]:
            self.mailboxes.append((user, via_list))

    def add_remote(self, address: str):
        if address.lower() not in [a.lower() for a in self.remote]:
            self.remote.append(address)


def split(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local.strip('"').lower(), domain.lower()


def expand(store, address: str, settings) -> Plan:
    plan = Plan()
    domains = directory.local_domains(settings)
    _follow(store, address, settings, domains, plan, seen=set(), via_list="", depth=0)
    return plan


def _follow(store, target: str, settings, domains, plan: Plan, seen: set, via_list: str, depth: int):
    if "@" in target:
        name, domain = split(target)
        if domain not in domains:
            plan.add_remote(target)
            return
    else:
        name = target.lower()
    if depth > MAX_DEPTH:
        raise Unknown(f"aliases nest deeper than {MAX_DEPTH} levels at '{name}'")
    kind = groups.mail_kind(store, name)
    if kind is None and via_list and directory.is_user(store, name):
        # A list member without Email permission is left out; the rest of
        # the list still gets the message.
        return
    if name in seen:
        # A cycle: a user still gets its copy, anything else stops here.
        if kind == "user":
            plan.add_mailbox(name, via_list)
        return
    seen.add(name)
    if kind == "list":
        plan.lists.append(name)
        for member in directory.list_members(store, name) or ():
            _follow(store, member, settings, domains, plan, seen, via_list or name, depth + 1)
    elif kind == "alias":
        _follow(store, directory.aliases(store)[name], settings, domains, plan, seen, via_list,
                depth + 1)
    elif kind == "user":
        if not via_list:
            plan.responders.append(name)
        forward = directory.forwarder(store, name)
        if forward is None:
            plan.add_mailbox(name, via_list)
            return
        if forward.keep_copy:
            plan.add_mailbox(name, via_list)
        _follow(store, forward.target, settings, domains, plan, seen, via_list, depth + 1)
    elif name == "postmaster" and _first_admin(store):
        # RFC 5321 section 4.5.1: postmaster must always be accepted.
        _follow(store, _first_admin(store), settings, domains, plan, seen, via_list, depth + 1)
    elif depth == 0 and settings[keys.UNADDRESSABLE] == "user" and settings[keys.UNADDRESSABLE_USER]:
        catch_all = settings[keys.UNADDRESSABLE_USER]
        if groups.mail_kind(store, catch_all) != "user":
            raise Unknown(f"unaddressable mail goes to '{catch_all}', which is not a user "
                          "with Email permission")
        plan.add_mailbox(catch_all, via_list)
    else:
        raise Unknown(f"no user, alias or distribution list '{name}'")


def _first_admin(store) -> str | None:
    """The first administrator with Email permission, else the first one
    (whose missing permission then refuses the mail, as for any user)."""
    admins = [name for (name,) in store.db.execute(
        "SELECT name FROM accounts WHERE is_admin = 1 ORDER BY name")]
    return next((a for a in admins if groups.has_email(store, a)), admins[0] if admins else None)
