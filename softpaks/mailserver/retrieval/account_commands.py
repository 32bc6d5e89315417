"""`gatebox remotepop list|add|set|delete` and `gatebox isp-login
list|set|clear`: the Remote POP accounts and each user's ISP login
(Mirrored) from the shell. Passwords are asked for without echo (or read
from standard input by a script) and never printed back."""

from __future__ import annotations

import click

from firmware.cli.errors import fail, reported

from ..license import is_licensed
from . import isp_accounts

NOT_LICENSED = ("the Mail Server SoftPak is not licensed on this box, so {what} are not "
                "available; activate a key with 'gatebox license activate KEY'. "
                "Existing settings are kept.")


def _store(obj, what: str):
    store = obj.store
    if not is_licensed(store):
        fail(NOT_LICENSED.format(what=what))
    return store


def _run(action):
    with reported(isp_accounts.AccountInputError):
        return action()


# ---- Remote POP ----------------------------------------------------------------------------
@click.group("remotepop")
def remotepop_group():
    """Email Server > Remote POP: further POP3/IMAP mailboxes, each fetched into one local user."""


@remotepop_group.command("list")
@click.pass_obj
def remotepop_list(obj):
    """Every account (the password is never shown)."""
    store = _store(obj, "Remote POP accounts")
    found = isp_accounts.remote_accounts(store)
    for account in found:
        click.echo(account.describe())
    click.echo(f"{len(found)} Remote POP account(s)", err=True)


def _password(prompt: bool) -> str | None:
    """Without echo on a terminal; a script pipes it in on standard input."""
    if not prompt:
        return None
    return click.prompt("Password", hide_input=True, default="", show_default=False) or None


@remotepop_group.command("add")
@click.pass_obj
@click.option("--port", default="", help="Its port (default: the protocol's usual one).")
@click.option("--protocol", type=click.Choice(isp_accounts.PROTOCOLS), default="pop3",
              show_default=True)
@click.option("--tls", type=click.Choice(isp_accounts.TLS_MODES), default="tls", show_default=True,
              help="tls: TLS from the first byte; starttls: STLS/STARTTLS; none: in clear.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check the server's certificate.")
@click.option("--disabled", is_flag=True, help="Keep the account but do not fetch it yet.")
@click.argument("host")
@click.argument("login")
@click.argument("recipient")
def remotepop_add(obj, port, protocol, tls, verify, disabled, host, login, recipient):
    """Fetch LOGIN's mailbox at HOST into local user RECIPIENT's mailbox.
    The password is asked for (or read from standard input)."""
    store = _store(obj, "Remote POP accounts")
    secret = _password(True)
    number = _run(lambda: isp_accounts.save_remote_account(
        store, host_name=host, port_text=port, protocol_name=protocol, tls=tls, verify=verify,
        login_name=login, password_text=secret, recipient=recipient, enabled=not disabled,
        actor="cli"))
    click.echo(isp_accounts.remote_account(store, number).describe())


@remotepop_group.command("set")
@click.pass_obj
@click.argument("number")
@click.option("--host", default=None, help="The POP3/IMAP server's host name or IP address.")
@click.option("--port", default=None, help="Its port (empty: the protocol's usual one).")
@click.option("--protocol", type=click.Choice(isp_accounts.PROTOCOLS), default=None)
@click.option("--tls", type=click.Choice(isp_accounts.TLS_MODES), default=None)
@click.option("--verify/--no-verify", default=None, help="Check the server's certificate.")
@click.option("--login", default=None)
@click.option("--recipient", default=None, metavar="USER")
@click.option("--enabled/--disabled", default=None)
@click.option("--password", "new_password", is_flag=True,
              help="Ask for a new password (or read it from standard input).")
def remotepop_set(obj, number, host, port, protocol, tls, verify, login, recipient, enabled,
                  new_password):
    """Change account NUMBER; what is not given stays (the password too)."""
    store = _store(obj, "Remote POP accounts")
    current = _run(lambda: isp_accounts.remote_account(store, number))
    if current is None:
        fail(f"Remote POP account {number}: no such account (see 'gatebox remotepop list')")
    secret = _password(new_password)
    protocol = protocol or current.protocol
    tls = tls or current.tls
    changed_service = (protocol, tls) != (current.protocol, current.tls)
    if port is None:
        # A new protocol or security without a port: that one's usual port.
        port = "" if changed_service else str(current.port)
    _run(lambda: isp_accounts.save_remote_account(
        store, host_name=host if host is not None else current.host, port_text=port,
        protocol_name=protocol, tls=tls,
        verify=current.verify if verify is None else verify,
        login_name=login if login is not None else current.login, password_text=secret,
        recipient=recipient if recipient is not None else current.recipient,
        enabled=current.enabled if enabled is None else enabled, account_id=current.id,
        actor="cli"))
    click.echo(isp_accounts.remote_account(store, current.id).describe())


@remotepop_group.command("delete")
@click.pass_obj
@click.argument("number")
def remotepop_delete(obj, number):
    """Delete account NUMBER (the mail already fetched stays)."""
    store = _store(obj, "Remote POP accounts")
    _run(lambda: isp_accounts.delete_remote_account(store, number, actor="cli"))
    click.echo(f"deleted Remote POP account {number.strip()}")


# ---- Mirrored: each user's ISP login ---------------------------------------------------------------
@click.group("isp-login")
def isp_login_group():
    """Users & Groups > Users: each user's ISP login, fetched into the user's mailbox (Mirrored)."""


@isp_login_group.command("list")
@click.pass_obj
def isp_login_list(obj):
    store = _store(obj, "ISP logins")
    for item in isp_accounts.isp_logins(store):
        click.echo(f"{item.name}: {item.login} ({'password stored' if item.password_set else 'no password'})")


@isp_login_group.command("set")
@click.pass_obj
@click.argument("user")
@click.argument("login")
@click.option("--keep-password", is_flag=True, help="Change only the login; keep the stored password.")
def isp_login_set(obj, user, login, keep_password):
    """USER's mailbox at the ISP is LOGIN; the password is asked for (or
    read from standard input)."""
    store = _store(obj, "ISP logins")
    secret = _password(not keep_password)
    _run(lambda: isp_accounts.set_isp_login(store, user, login, secret, actor="cli"))
    item = isp_accounts.isp_login(store, user)
    click.echo(f"{item.name}: {item.login} (password stored)")


@isp_login_group.command("clear")
@click.pass_obj
@click.argument("user")
def isp_login_clear(obj, user):
    store = _store(obj, "ISP logins")
    _run(lambda: isp_accounts.clear_isp_login(store, user, actor="cli"))
    click.echo(f"ISP login of {user.strip().lower()} cleared")


ACCOUNT_COMMANDS = [remotepop_group, isp_login_group]
