"""`gatebox quarantine`: what Email Server > Quarantine shows and does."""

from __future__ import annotations

import sys
import time

import click

from firmware.mail.quarantine import Quarantine
from firmware.mail.queue import NotInQueue, Spool
from firmware.mail.queue_ops import picked_up_by_rescan

from .errors import fail, fail_all


@click.group()
def quarantine():
    """Email Server > Quarantine: messages held for the administrator."""


@quarantine.command("list")
@click.option("--kind", type=click.Choice(["virus", "spam"]), help="Only this kind.")
@click.pass_obj
def quarantine_list(obj, kind):
    items = Quarantine(obj.data).items(kind)
    if not items:
        click.echo("The quarantine is empty")
        return
    click.echo(f"{'Quarantine ID':<20} {'Kind':<6} {'Date':<17} {'Size':>8}  From -> Recipients")
    for item in items:
        env = item.envelope
        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(env.received))
        recipients = ", ".join(r.address for r in env.recipients)
        click.echo(f"{item.id:<20} {item.kind:<6} {date:<17} {env.size:>8}  "
                   f"<{env.sender}> -> {recipients}")
        click.echo(f"{'':<20} ({item.reason})")
    click.echo(f"-- {len(items)} message(s)")


@quarantine.command("show")
@click.argument("qid")
@click.pass_obj
def quarantine_show(obj, qid):
    try:
        item, message = Quarantine(obj.data).load(qid)
    except NotInQueue:
        fail(f"{qid}: no such message in the quarantine")
    click.echo(f"Quarantine ID: {item.id}  Kind: {item.kind}  Reason: {item.reason}")
    click.echo(f"Sender: <{item.envelope.sender}>  Client: {item.envelope.client_address}")
    for recipient in item.envelope.recipients:
        click.echo(f"Recipient: <{recipient.address}>")
    click.echo("")
    sys.stdout.flush()
    sys.stdout.buffer.write(message)


@quarantine.command("release")
@click.argument("qids", nargs=-1, required=True)
@click.pass_obj
def quarantine_release(obj, qids):
    """Deliver to the original recipients (the queue takes it from here)."""
    done, errors = Quarantine(obj.data).release_many(
        qids, Spool(obj.data / "queue"), picked_up_by_rescan, obj.store, "cli")
    for qid, new_id in done:
        click.echo(f"{qid}: released as {new_id}")
    fail_all(errors)


@quarantine.command("delete")
@click.argument("qids", nargs=-1, required=True)
@click.pass_obj
def quarantine_delete(obj, qids):
    done, errors = Quarantine(obj.data).delete_many(qids, obj.store, "cli")
    for qid in done:
        click.echo(f"{qid}: deleted")
    fail_all(errors)


COMMANDS = [quarantine]
