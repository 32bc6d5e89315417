"""`gatebox init`, `gatebox run` and the hidden `gatebox qmgr` and `gatebox
smtpd-worker` (the children `gatebox run` starts)."""

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
@click.option("--smtpd-processes", type=click.IntRange(0, 16), default=0,
              help="Processes that take SMTP connections (0: one per core, at most four).")
@click.pass_obj
def run(obj, bind, smtp_port, submission_port, http_port, dev_http, pop3_port, imap_port,
        imaps_port, clamd, smtpd_processes):
    """Upgrade the settings database, then run the mail services and the web
    admin in the foreground until SIGTERM."""
    from firmware.run import start
    from firmware.run.smtpd_workers import default_processes
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
              imaps_port=imaps_port, clamd=clamd, upgraded=upgraded,
              smtpd_processes=smtpd_processes or default_processes())


@click.command(hidden=True)
@click.option("--notify-fd", type=int, help="Pipe on which smtpd announces new mail.")
@click.pass_obj
def qmgr(obj, notify_fd):
    """Run the queue manager alone (`gatebox run` starts it)."""
    from firmware.run import qmgr as qmgr_process
    obj.store.close()
    qmgr_process.run(obj.data, notify_fd)


def _listening(value: str) -> tuple[int, str]:
    fd, _, kind = value.partition(":")
    return int(fd), kind


@click.command("smtpd-worker", hidden=True)
@click.option("--part", type=int, required=True, help="This process's part of the shared memory.")
@click.option("--processes", type=int, required=True, help="How many smtpd processes share it.")
@click.option("--shared-fd", type=int, required=True, help="The shared memory.")
@click.option("--notify-fd", type=int, required=True, help="Pipe on which to announce new mail.")
@click.option("--listen", "listening", multiple=True, required=True,
              help="FD:KIND, an inherited listening socket and its port (smtp, submission).")
@click.pass_obj
def smtpd_worker(obj, part, processes, shared_fd, notify_fd, listening):
    """Take SMTP connections beside the first smtpd process (`gatebox run` starts it)."""
    from firmware.run import smtpd_workers
    obj.store.close()
    smtpd_workers.run_worker(obj.data, part=part, processes=processes, shared_fd=shared_fd,
                             notify_fd=notify_fd, listening=[_listening(v) for v in listening])


COMMANDS = [init, run, qmgr, smtpd_worker]
