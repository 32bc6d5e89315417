"""`gatebox antispam`: the Anti-Spam SoftPak from the shell.

The lists can be kept while the SoftPak is not licensed (they are the
office's data and outlive a lapse); the commands then say that nothing is
filtered until a key is activated."""

from __future__ import annotations

import click

from firmware.cli.errors import fail, reported

from . import lists
from .greylist_cli import greylist_group
from .license import is_licensed

NOT_FILTERING = ("note: the Anti-Spam SoftPak is not licensed on this box: the lists are kept "
                 "but filter nothing until a key is activated ('gatebox license activate KEY')")


@click.group("antispam")
def antispam():
    """Anti-Spam: black and whitelists, the greylist, blocklist zones."""


# ---- black and whitelists ----------------------------------------------------------
@antispam.group("list")
def list_group():
    """Anti-Spam > Lists: black and whitelists for the server, a domain or a user.

    An entry is an IP address or network, a domain (the sender's domain or
    the client's verified PTR name, subdomains included) or an address (the
    envelope sender). Precedence: user over domain over server; within one
    level the whitelist over the blacklist."""


def _level_options(command):
    command = click.option("--user", "user", metavar="U",
                           help="User level: mail to this local user (name or address).")(command)
    return click.option("--domain", "domain", metavar="D",
                        help="Domain level: mail to or from this local domain.")(command)


def _color_options(command):
    command = click.option("--black", "color", flag_value="black",
                           help="The blacklist: refused with 554 5.7.1.")(command)
    return click.option("--white", "color", flag_value="white",
                        help="The whitelist: skips the filtering layers.")(command)


def _store(ctx):
    store = ctx.obj.store
    if not is_licensed(store):
        click.echo(NOT_FILTERING, err=True)
    return store


def _checked(color, domain, user, needs_color=True):
    if needs_color and color is None:
        fail("say which list: --white or --black")
    if domain and user:
        fail("--domain and --user exclude each other: give one, or neither for the server list")


@list_group.command("add")
@_color_options
@_level_options
@click.argument("entry")
@click.pass_context
def list_add(ctx, color, domain, user, entry):
    """Put ENTRY on a list (the server's, or --domain D's, or --user U's)."""
    _checked(color, domain, user)
    store = _store(ctx)
    with reported(lists.ListError):
        made = lists.add(store, color, entry, domain=domain, user=user, actor="cli")
    click.echo(f"added {made.entry} to {made.where}")


@list_group.command("remove")
@_color_options
@_level_options
@click.argument("entry")
@click.pass_context
def list_remove(ctx, color, domain, user, entry):
    """Take ENTRY off a list."""
    _checked(color, domain, user)
    store = _store(ctx)
    with reported(lists.ListError):
        gone = lists.remove(store, color, entry, domain=domain, user=user, actor="cli")
    click.echo(f"removed {gone.entry} from {gone.where}")


@list_group.command("show")
@_color_options
@_level_options
@click.pass_context
def list_show(ctx, color, domain, user):
    """The entries: level, scope, list and entry, one per line (every level,
    or the lists of --domain D or --user U)."""
    _checked(color, domain, user, needs_color=False)
    store = _store(ctx)
    with reported(lists.ListError):
        if domain or user:
            level, scope = lists.named_scope(store, domain, user)
            found = lists.entries(store, level, scope)
        else:
            found = lists.entries(store)
    found = [e for e in found if color is None or e.color == color]
    rows = [("LEVEL", "SCOPE", "LIST", "ENTRY")] + [
        (e.level, e.scope or "-", e.color, e.entry) for e in found]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths)) + "  " + row[3])
    click.echo(f"{len(found)} entr{'y' if len(found) == 1 else 'ies'}", err=True)


# ---- further subgroups -----------------------------------------------------------------
antispam.add_command(greylist_group)


COMMANDS = [antispam]
