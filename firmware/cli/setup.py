"""`gatebox init`, `gatebox run` and the hidden `gatebox qmgr` (the child
`gatebox run` starts)."""

from __future__ import annotations

import os

import click

from firmware import accounts
from firmware.config import Store, StoreMissing
from firmware.mail.queue import Spool
from firmware.system import tls

from .errors import reported


@click.command()
@click.option("--domain", help="Domain Name, e.g. mydomain.com.")
@click.option("--admin-password", help="Create the administrator account 'admin' with this password.")
@click.pass_obj
def init(obj, domain, admin_password):
    """Create the settings database (or bring it up to date), TLS certificate
    and queue directories."""
    # What init makes is the service's alone (the units set UMask=0077 too).
    os.umask(0o077)
    with reported():
        store = Store.create(obj.data)
        if domain:
            store.set("email.domain", domain, actor="init")
        if admin_password and not any(u["name"] == "admin" for u in accounts.list_users(store)):
            accounts.add_user(store, "admin", admin_password, admin=True, actor="init")
    tls.ensure_certificate(obj.data, store.get("system.hostname"))
    Spool(obj.data / "queue").create()
    click.echo(f"initialised {obj.data}")


@click.command()
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
@click.option("--clamd", type=click.Choice(["child", "external"]), default="child",
              show_default=True,
              help="How the Anti-Virus SoftPak's clamd runs: as a child of this process, or "
                   "by the system (the image's gatebox-clamd unit, started on a flag file).")
@click.pass_obj
def run(obj, bind, smtp_port, submission_port, http_port, dev_http, pop3_port, imap_port,
        imaps_port, clamd):
    """Upgrade the settings database, then run the mail services and the web
    admin in the foreground until SIGTERM."""
    from firmware.run import start
    # Once per start, before any process opens the store: the core's and the
    # SoftPaks' migrations (a firmware update may have brought new ones). No
    # database at all is a setup mistake; one the migrations fail on is a
    # fault the web admin must stay up through, so the mail stack tries again.
    upgraded = True
    with reported():
        try:
            Store.upgrade(obj.data).close()
        except StoreMissing:
            raise
        except Exception as error:  # noqa: BLE001
            click.echo(f"gatebox: the settings database is not up to date: "
                       f"{error.__class__.__name__}: {error}", err=True)
            upgraded = False
    start.run(obj.data, bind=bind, smtp_port=smtp_port, submission_port=submission_port,
              http_port=http_port, dev_http=dev_http, pop3_port=pop3_port, imap_port=imap_port,
              imaps_port=imaps_port, clamd=clamd, upgraded=upgraded)


@click.command(hidden=True)
@click.option("--notify-fd", type=int, help="Pipe on which smtpd announces new mail.")
@click.pass_obj
def qmgr(obj, notify_fd):
    """Run the queue manager alone (`gatebox run` starts it)."""
    from firmware.run import qmgr as qmgr_process
    obj.store.close()
    qmgr_process.run(obj.data, notify_fd)


COMMANDS = [init, run, qmgr]
