"""The `gatebox` command: set up, run and administer a box from the shell."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from firmware import __version__, accounts, plugins
from firmware.config import SettingError, Store, declarations
from firmware.system.update.errors import UpdateError

DEFAULT_DATA = "/data"


class Context:
    def __init__(self, data: str):
        self.data = Path(data)
        self._store = None

    @property
    def store(self) -> Store:
        if self._store is None:
            with reported():
                self._store = Store(self.data)
        return self._store


def fail(message: str, code: int = 1):
    click.echo(f"gatebox: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def reported():
    """A refused value, account change or firmware update ends the command with its message."""
    try:
        yield
    except (SettingError, accounts.AccountError, UpdateError) as error:
        fail(str(error))


@click.group()
@click.option("--data", envvar="GATEBOX_DATA", default=DEFAULT_DATA, show_default=True,
              help="Data directory: settings database, queue, certificates.")
@click.version_option(__version__, prog_name="gatebox")
@click.pass_context
def main(ctx, data):
    """gatebox: the office mail gateway."""
    ctx.obj = Context(data)


# ---- init / run ---------------------------------------------------------------
@main.command()
@click.option("--domain", help="Domain Name, e.g. mydomain.com.")
@click.option("--admin-password", help="Create the administrator account 'admin' with this password.")
@click.pass_obj
def init(obj: Context, domain, admin_password):
    """Create the settings database, TLS certificate and queue directories."""
    from firmware.mail.queue import Spool
    from firmware.system import tls
    store = Store.create(obj.data)
    plugins.apply_softpak_migrations(store)
    with reported():
        if domain:
            store.set("email.domain", domain, actor="init")
        if admin_password and not any(u["name"] == "admin" for u in accounts.list_users(store)):
            accounts.add_user(store, "admin", admin_password, admin=True, actor="init")
    tls.ensure_certificate(obj.data, store.get("system.hostname"))
    Spool(obj.data / "queue").create()
    click.echo(f"initialised {obj.data}")


@main.command()
@click.option("--bind", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--smtp-port", default=25, show_default=True, type=int)
@click.option("--submission-port", default=587, show_default=True, type=int,
              help="Submission port (0 to disable).")
@click.option("--http-port", default=0, show_default=True, type=int,
              help="Serve the web admin on this port over HTTPS (0: no web admin).")
@click.option("--dev-http", is_flag=True,
              help="Development only: serve the web admin over plain HTTP instead of HTTPS.")
@click.option("--pop3-port", type=int, default=None,
              help="POP3 port of the Mail Server SoftPak's mailbox access (0 to disable; "
                   "default: the mailserver.pop3_port setting).")
@click.option("--imap-port", type=int, default=None,
              help="IMAP port of the Mail Server SoftPak's mailbox access (0 to disable; "
                   "default: the mailserver.imap_port setting).")
@click.option("--imaps-port", type=int, default=None,
              help="IMAP over SSL port of the Mail Server SoftPak's mailbox access (0 to disable; "
                   "default: the mailserver.imaps_port setting).")
@click.pass_obj
def run(obj: Context, bind, smtp_port, submission_port, http_port, dev_http, pop3_port, imap_port,
        imaps_port):
    """Run the mail services in the foreground until SIGTERM."""
    from firmware import services
    obj.store.close()
    services.run(obj.data, bind=bind, smtp_port=smtp_port, submission_port=submission_port,
                 http_port=http_port, dev_http=dev_http, pop3_port=pop3_port, imap_port=imap_port,
                 imaps_port=imaps_port)


@main.command(hidden=True)
@click.option("--notify-fd", type=int, help="Pipe on which smtpd announces new mail.")
@click.pass_obj
def qmgr(obj: Context, notify_fd):
    """Run the queue manager alone (`gatebox run` starts it)."""
    from firmware import services
    obj.store.close()
    services.run_qmgr(obj.data, notify_fd)


# ---- config -------------------------------------------------------------------
@main.group()
def config():
    """Show and change settings."""


@config.command("show")
@click.option("--menu", help="Only settings under this menu path, e.g. 'Email Server > Settings'.")
@click.pass_obj
def config_show(obj: Context, menu):
    """Every setting with its value and menu path."""
    values = obj.store.all()
    for key, setting in declarations().items():
        if menu and not setting.menu.lower().startswith(menu.lower()):
            continue
        shown = obj.store.render(key, values[key])
        click.echo(f"{key} = {shown}    # {setting.menu} > {setting.label}")


@config.command("get")
@click.argument("key")
@click.pass_obj
def config_get(obj: Context, key):
    """Print one setting's value."""
    with reported():
        click.echo(obj.store.render(key, obj.store.get(key)))


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_obj
def config_set(obj: Context, key, value):
    """Change one setting (validated; running services pick it up)."""
    with reported():
        change = obj.store.set(key, value, actor="cli")
    if change is None:
        click.echo(f"{key} unchanged")
        return
    click.echo(f"{key} = {obj.store.render(key, change.new)}")
    if change.warning:
        click.echo(f"warning: {change.warning}", err=True)


# ---- users --------------------------------------------------------------------
@main.group()
def user():
    """Product accounts (SMTP AUTH, and the web admin for administrators)."""


@user.command("add")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--admin", is_flag=True, help="Give the account administrator rights.")
@click.pass_obj
def user_add(obj: Context, name, password, admin):
    with reported():
        accounts.add_user(obj.store, name, password, admin=admin, actor="cli")
    click.echo(f"added {name}")


@user.command("del")
@click.argument("name")
@click.pass_obj
def user_del(obj: Context, name):
    with reported():
        accounts.delete_user(obj.store, name, actor="cli")
    click.echo(f"deleted {name}")


@user.command("passwd")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.pass_obj
def user_passwd(obj: Context, name, password):
    with reported():
        accounts.set_password(obj.store, name, password, actor="cli")
    click.echo(f"password of {name} changed")


@user.command("list")
@click.pass_obj
def user_list(obj: Context):
    for row in accounts.list_users(obj.store):
        click.echo(f"{row['name']}{'  (administrator)' if row['is_admin'] else ''}")


def _register_subcommands():
    from firmware.mail.queue_cli import queue
    main.add_command(queue)
    from firmware.licensing.cli import license_group, softpak_group
    main.add_command(license_group)
    main.add_command(softpak_group)
    from firmware.system.update.cli import firmware_group
    main.add_command(firmware_group)
    from firmware.system.usb.cli import usb_group
    main.add_command(usb_group)
    # Always registered: unlicensed, they say so instead of vanishing.
    from softpaks.mailserver.cli import MAILSERVER_COMMANDS
    for command in MAILSERVER_COMMANDS:
        main.add_command(command)


_register_subcommands()


if __name__ == "__main__":
    main()
