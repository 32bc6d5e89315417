"""`gatebox group|alias|list|forwarder|responder|domain|mailbox`: Users & Groups
from the shell, so an installer can script a box. Always registered; while
the SoftPak is not licensed every command says so and changes nothing."""

from __future__ import annotations

import click

from firmware.cli.errors import fail, reported

from . import directory, groups, maildir
from .license import is_licensed
from .retrieval.commands import retrieve_group
from .retrieval.account_commands import ACCOUNT_COMMANDS

NOT_LICENSED = ("the Mail Server SoftPak is not licensed on this box, so {what} are not "
                "available; activate a key with 'gatebox license activate KEY' "
                "(see 'gatebox softpak list'). Existing mail and settings are kept.")


def _store(ctx, what: str):
    store = ctx.obj.store
    if not is_licensed(store):
        fail(NOT_LICENSED.format(what=what))
    return store


def _run(action):
    with reported(directory.DirectoryError):
        return action()


def _delete_command(parent, what: str, delete, done: str, argument: str = "name"):
    """The `del` command of a Users & Groups object: delete(store, name, actor=...),
    then `done` with {} for the name."""
    @parent.command("del")
    @click.argument(argument)
    @click.pass_context
    def command(ctx, **given):
        name = given[argument].lower()
        store = _store(ctx, what)
        _run(lambda: delete(store, name, actor="cli"))
        click.echo(done.format(name))
    return command


# ---- groups ----------------------------------------------------------------------
@click.group("group")
def group_group():
    """Users & Groups > Groups: groups of users and the permissions they give (Email)."""


def _describe_group(item) -> str:
    given = "email" if item.email else "no email"
    joins = ", new users join" if item.new_users else ""
    return f"{item.name} ({given}{joins}): {', '.join(item.members) or '(no members)'}"


@group_group.command("add")
@click.argument("name")
@click.option("--email/--no-email", default=True, show_default=True,
              help="Members may have a mailbox: receive and send mail, use POP3/IMAP.")
@click.option("--new-users/--no-new-users", default=False, show_default=True,
              help="Accounts added from now on join this group.")
@click.option("--member", "members", multiple=True, metavar="USER", help="A member (repeat for more).")
@click.pass_context
def group_add(ctx, name, email, new_users, members):
    store = _store(ctx, "groups")
    _run(lambda: groups.save_group(store, name, email=email, new_users=new_users, members=members,
                                   actor="cli"))
    click.echo(_describe_group(groups.group(store, name.strip().lower())))


@group_group.command("set")
@click.argument("name")
@click.option("--email/--no-email", default=None, help="Give or take away the Email permission.")
@click.option("--new-users/--no-new-users", default=None, help="Whether new accounts join.")
@click.pass_context
def group_set(ctx, name, email, new_users):
    """Change what group NAME gives; its members stay."""
    store = _store(ctx, "groups")
    _run(lambda: groups.set_permissions(store, name.lower(), email=email, new_users=new_users,
                                        actor="cli"))
    click.echo(_describe_group(groups.group(store, name.lower())))


def _membership_command(verb: str, change, help_text: str):
    @group_group.command(verb, help=help_text)
    @click.argument("name")
    @click.argument("users", nargs=-1, required=True)
    @click.pass_context
    def command(ctx, name, users):
        store = _store(ctx, "groups")
        _run(lambda: change(store, name.lower(), users, actor="cli"))
        click.echo(_describe_group(groups.group(store, name.lower())))
    return command


group_join = _membership_command("join", groups.join, "Make USERs members of group NAME.")
group_leave = _membership_command("leave", groups.leave,
                                  "Take USERs out of group NAME (their mail is kept).")


group_del = _delete_command(group_group, "groups", groups.delete_group, "deleted group {}")


@group_group.command("list")
@click.pass_context
def group_list(ctx):
    """Every group, then the users no group gives Email permission."""
    store = _store(ctx, "groups")
    for item in groups.groups(store):
        click.echo(_describe_group(item))
    without = groups.users_without_email(store)
    if without:
        click.echo(f"without Email permission: {', '.join(without)}")


# ---- aliases ---------------------------------------------------------------------
@click.group("alias")
def alias_group():
    """Users & Groups > Aliases: an address that delivers to another address."""


@alias_group.command("add")
@click.argument("name")
@click.argument("target")
@click.pass_context
def alias_add(ctx, name, target):
    """NAME@<local domains> is delivered to TARGET (a user, alias, list or address)."""
    store = _store(ctx, "aliases")
    _run(lambda: directory.add_alias(store, name, target, actor="cli"))
    click.echo(f"alias {name.lower()} -> {target}")


alias_del = _delete_command(alias_group, "aliases", directory.delete_alias, "deleted alias {}")


@alias_group.command("list")
@click.pass_context
def alias_list(ctx):
    for name, target in directory.aliases(_store(ctx, "aliases")).items():
        click.echo(f"{name} -> {target}")


# ---- distribution lists ---------------------------------------------------------------
@click.group("list")
def list_group():
    """Users & Groups > Distribution Lists: one address, many recipients."""


@list_group.command("add")
@click.argument("name")
@click.argument("members", nargs=-1, required=True)
@click.pass_context
def list_add(ctx, name, members):
    """Create list NAME, or add MEMBERs (local users or remote addresses) to it."""
    store = _store(ctx, "distribution lists")
    _run(lambda: directory.add_list(store, name, members, actor="cli"))
    click.echo(f"list {name.lower()}: {', '.join(directory.list_members(store, name.lower()))}")


@list_group.command("remove")
@click.argument("name")
@click.argument("members", nargs=-1, required=True)
@click.pass_context
def list_remove(ctx, name, members):
    """Take MEMBERs off list NAME."""
    store = _store(ctx, "distribution lists")
    _run(lambda: directory.remove_list_members(store, name.lower(), members, actor="cli"))
    click.echo(f"list {name.lower()}: {', '.join(directory.list_members(store, name.lower()) or [])}")


list_del = _delete_command(list_group, "distribution lists", directory.delete_list,
                           "deleted list {}")


@list_group.command("show")
@click.argument("name", required=False)
@click.pass_context
def list_show(ctx, name):
    """Members of list NAME, or every list."""
    store = _store(ctx, "distribution lists")
    found = directory.lists(store)
    if name:
        if name.lower() not in found:
            fail(f"distribution list '{name.lower()}': no such list")
        found = {name.lower(): found[name.lower()]}
    for list_name, members in found.items():
        click.echo(f"{list_name}: {', '.join(members)}")


# ---- forwarders ----------------------------------------------------------------------------
@click.group("forwarder")
def forwarder_group():
    """Users & Groups > Forwarders: send a user's mail on to another address."""


@forwarder_group.command("add")
@click.argument("user")
@click.argument("target")
@click.option("--keep-copy", is_flag=True, help="Save a local copy in the user's mailbox too.")
@click.pass_context
def forwarder_add(ctx, user, target, keep_copy):
    store = _store(ctx, "forwarders")
    _run(lambda: directory.set_forwarder(store, user, target, keep_copy, actor="cli"))
    click.echo(f"forwarder {user.lower()} -> {target}{' (keeping a local copy)' if keep_copy else ''}")


forwarder_del = _delete_command(forwarder_group, "forwarders", directory.delete_forwarder,
                                "deleted forwarder of {}", argument="user")


@forwarder_group.command("list")
@click.pass_context
def forwarder_list(ctx):
    for item in directory.forwarders(_store(ctx, "forwarders")):
        click.echo(f"{item.name} -> {item.target}{'  (keep a local copy)' if item.keep_copy else ''}")


# ---- auto-responders ---------------------------------------------------------------------------
@click.group("responder")
def responder_group():
    """Users & Groups > Auto-Responders: answer a user's mail automatically."""


@responder_group.command("set")
@click.argument("user")
@click.option("--message", required=True, help="The reply's text.")
@click.option("--subject", default="", help="The reply's subject (default: 'Auto: <subject>').")
@click.pass_context
def responder_set(ctx, user, message, subject):
    store = _store(ctx, "auto-responders")
    _run(lambda: directory.set_responder(store, user, message, subject, actor="cli"))
    click.echo(f"auto-responder of {user.lower()} set")


@responder_group.command("clear")
@click.argument("user")
@click.pass_context
def responder_clear(ctx, user):
    store = _store(ctx, "auto-responders")
    _run(lambda: directory.clear_responder(store, user.lower(), actor="cli"))
    click.echo(f"auto-responder of {user.lower()} cleared")


@responder_group.command("list")
@click.pass_context
def responder_list(ctx):
    for item in directory.responders(_store(ctx, "auto-responders")):
        click.echo(f"{item.name}: {item.subject or '(Auto: <subject>)'}: {item.message}")


# ---- local domains ---------------------------------------------------------------------------------
@click.group("domain")
def domain_group():
    """Local domains: the Domain Name and further domains whose mail stays on the box."""


@domain_group.command("add")
@click.argument("domain")
@click.pass_context
def domain_add(ctx, domain):
    store = _store(ctx, "local domains")
    _run(lambda: directory.add_domain(store, domain, actor="cli"))
    click.echo(f"local domains: {', '.join(directory.local_domains(store.snapshot()))}")


@domain_group.command("del")
@click.argument("domain")
@click.pass_context
def domain_del(ctx, domain):
    store = _store(ctx, "local domains")
    _run(lambda: directory.delete_domain(store, domain, actor="cli"))
    click.echo(f"local domains: {', '.join(directory.local_domains(store.snapshot()))}")


@domain_group.command("list")
@click.pass_context
def domain_list(ctx):
    store = _store(ctx, "local domains")
    for index, domain in enumerate(directory.local_domains(store.snapshot())):
        click.echo(f"{domain}{'  (Domain Name)' if index == 0 else ''}")


# ---- mailboxes -------------------------------------------------------------------------------------
@click.group("mailbox")
def mailbox_group():
    """Users & Groups > User Mailboxes: what a user's mailbox holds."""


def _mailbox(ctx, user: str):
    store = _store(ctx, "user mailboxes")
    name = user.lower()
    owner = name[len("archive-"):] if name.startswith("archive-") else name
    if not directory.is_user(store, owner):
        fail(f"user '{owner}': no such user")
    return maildir.mailbox_path(store, store.data_dir, name, store.get("email.domain"))


@mailbox_group.command("list")
@click.argument("user")
@click.option("--sort", type=click.Choice(["date", "from", "subject", "size"]), default="date")
@click.pass_context
def mailbox_list(ctx, user, sort):
    """USER's messages (or archive-USER's): id, size, from, subject."""
    stored = maildir.messages(_mailbox(ctx, user))
    key = {"date": lambda m: m.id, "from": lambda m: m.sender.lower(),
           "subject": lambda m: m.subject.lower(), "size": lambda m: m.size}[sort]
    for message in sorted(stored, key=key):
        click.echo(f"{message.id}  {message.size:>8}  {message.sender}  {message.subject}")
    click.echo(f"{len(stored)} message(s)", err=True)


@mailbox_group.command("delete")
@click.argument("user")
@click.argument("message_ids", nargs=-1, required=True)
@click.pass_context
def mailbox_delete(ctx, user, message_ids):
    path = _mailbox(ctx, user)
    missing = [m for m in message_ids if not maildir.remove(path, m)]
    if missing:
        fail(f"no such message in {user.lower()}'s mailbox: {', '.join(missing)}")
    click.echo(f"deleted {len(message_ids)} message(s)")


@mailbox_group.command("purge")
@click.argument("user")
@click.pass_context
def mailbox_purge(ctx, user):
    """Delete every message in USER's mailbox."""
    click.echo(f"purged {maildir.purge(_mailbox(ctx, user))} message(s)")


MAILSERVER_COMMANDS = [group_group, alias_group, list_group, forwarder_group, responder_group,
                       domain_group, mailbox_group, retrieve_group] + ACCOUNT_COMMANDS
