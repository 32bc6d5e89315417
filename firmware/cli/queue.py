"""`gatebox queue`: the operations of "Managing the Email Server Queue"."""

from __future__ import annotations

import sys
import time

import click

from firmware.mail.queue import NotInQueue, Spool
from firmware.mail.queue_ops import QueueOps

from .errors import fail, fail_all


def _ops(obj) -> QueueOps:
    return QueueOps(Spool(obj.data / "queue"), obj.store)


def _report(done: list, errors: list, verb: str):
    for qid in done:
        click.echo(f"{qid}: {verb}")
    fail_all(errors)


@click.group()
def queue():
    """Messages in Queue: waiting, held and undeliverable mail."""


@queue.command("list")
@click.option("--sort", type=click.Choice(["id", "date", "from"]), default="id", show_default=True)
@click.pass_obj
def queue_list(obj, sort):
    entries = _ops(obj).listing(sort)
    if not entries:
        click.echo("Mail queue is empty")
        return
    click.echo(f"{'Message ID':<20} {'State':<9} {'Date':<17} {'Size':>8}  From -> Recipients")
    for entry in entries:
        env = entry.envelope
        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(env.received))
        pending = ", ".join(r.address for r in env.pending) or "-"
        click.echo(f"{env.id:<20} {entry.state:<9} {date:<17} {env.size:>8}  "
                   f"<{env.sender}> -> {pending}")
        if env.last_error:
            click.echo(f"{'':<20} ({env.last_error})")
    click.echo(f"-- {len(entries)} message(s)")


@queue.command("show")
@click.argument("qid")
@click.pass_obj
def queue_show(obj, qid):
    try:
        state, envelope, message = _ops(obj).show(qid)
    except NotInQueue:
        fail(f"{qid}: no such message in the queue")
    click.echo(f"Queue ID: {envelope.id}  State: {state}  Attempts: {envelope.attempts}")
    click.echo(f"Sender: <{envelope.sender}>  Client: {envelope.client_address} ({envelope.helo})")
    for recipient in envelope.recipients:
        click.echo(f"Recipient: <{recipient.address}> {recipient.status} {recipient.detail}".rstrip())
    click.echo("")
    sys.stdout.flush()
    sys.stdout.buffer.write(message)


@queue.command("hold")
@click.argument("qids", nargs=-1, required=True)
@click.pass_obj
def queue_hold(obj, qids):
    _report(*_ops(obj).apply("hold", qids, actor="cli"), "held")


@queue.command("release")
@click.argument("qids", nargs=-1, required=True)
@click.pass_obj
def queue_release(obj, qids):
    _report(*_ops(obj).apply("release", qids, actor="cli"), "released")


@queue.command("delete")
@click.option("--bounce", "generate_bounce", is_flag=True,
              help="On Delete, generate bounce messages to the senders.")
@click.argument("qids", nargs=-1, required=True)
@click.pass_obj
def queue_delete(obj, qids, generate_bounce):
    _report(*_ops(obj).apply("delete", qids, actor="cli", generate_bounce=generate_bounce), "deleted")


@queue.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def queue_purge(obj, yes):
    """Delete every message in the queue."""
    if not yes:
        click.confirm("Delete every message in the queue?", abort=True)
    count = _ops(obj).purge(actor="cli")
    click.echo(f"purged {count} message(s)")


@queue.command("flush")
@click.pass_obj
def queue_flush(obj):
    """Retry all deferred mail now."""
    count = _ops(obj).flush(actor="cli")
    click.echo(f"{count} deferred message(s) scheduled for immediate delivery")


COMMANDS = [queue]
