"""`gatebox user add | del | passwd | list | locks | unlock`: the product accounts."""

from __future__ import annotations

import click

from firmware import accounts, login_limits

from .errors import reported


@click.group()
def user():
    """Product accounts (SMTP AUTH, and the web admin for administrators)."""


@user.command("add")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--admin", is_flag=True, help="Give the account administrator rights.")
@click.pass_obj
def user_add(obj, name, password, admin):
    with reported():
        accounts.add_user(obj.store, name, password, admin=admin, actor="cli")
    click.echo(f"added {name}")


@user.command("del")
@click.argument("name")
@click.pass_obj
def user_del(obj, name):
    with reported():
        accounts.delete_user(obj.store, name, actor="cli")
    click.echo(f"deleted {name}")


@user.command("passwd")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.pass_obj
def user_passwd(obj, name, password):
    with reported():
        accounts.set_password(obj.store, name, password, actor="cli")
    click.echo(f"password of {name} changed")


@user.command("list")
@click.pass_obj
def user_list(obj):
    for row in accounts.list_users(obj.store):
        click.echo(f"{row['name']}{'  (administrator)' if row['is_admin'] else ''}")


@user.command("locks")
@click.pass_obj
def user_locks(obj):
    """Clients and accounts the login limiter has locked out now."""
    for lock in login_limits.shared.lockouts(obj.store):
        click.echo(f"{lock.realm} {lock.kind} {lock.key}: {lock.reason}; "
                   f"{lock.seconds_left()} seconds left")


@user.command("unlock")
@click.argument("name")
@click.option("--client", "is_client", is_flag=True,
              help="NAME is a client address (an IPv6 address stands for its /64).")
@click.pass_obj
def user_unlock(obj, name, is_client):
    """Lift the lockout of an account (or with --client, of a client) after failed logins."""
    limiter = login_limits.shared
    lifted = (limiter.unlock_client(obj.store, name, actor="cli") if is_client
              else limiter.unlock_account(obj.store, name, actor="cli"))
    shown = login_limits.client_key(name) if is_client else name
    click.echo(f"unlocked {shown}" if lifted else f"{shown} was not locked")


COMMANDS = [user]
