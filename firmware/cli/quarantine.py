"""`gatebox quarantine`: what Email Server > Quarantine shows and does."""

from __future__ import annotations

import sys
import time

import click

from firmware.mail.headers import safe_text
from firmware.mail.quarantine import Quarantine
from firmware.mail.quarantine_index import MAX_PAGE, Search
from firmware.mail.queue import NotInQueue, Spool
from firmware.mail.queue_ops import picked_up_by_rescan

from .errors import fail, fail_all


@click.group()
def quarantine():
    """Email Server > Quarantine: messages held for the administrator."""


def _day(text: str | None, end: bool = False) -> float | None:
    if not text:
        return None
    try:
        day = time.strptime(text, "%Y-%m-%d")
    except ValueError:
        fail(f"'{text}' is not a date such as 2026-12-01")
    return time.mktime((day.tm_year, day.tm_mon, day.tm_mday + (1 if end else 0), 0, 0, 0, 0,
                        0, -1))


@quarantine.command("list")
@click.option("--kind", type=click.Choice(["virus", "spam", "other"]), help="Only this kind.")
@click.option("--sender", default="", help="Sender (envelope or From:) containing this text.")
@click.option("--recipient", default="", help="A recipient containing this text.")
@click.option("--subject", default="", help="Subject containing this text.")
@click.option("--since", metavar="YYYY-MM-DD", help="Held on or after this day.")
@click.option("--until", metavar="YYYY-MM-DD", help="Held on or before this day.")
@click.option("--page", type=click.IntRange(1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, MAX_PAGE), default=100, show_default=True)
@click.pass_obj
def quarantine_list(obj, kind, sender, recipient, subject, since, until, page, per_page):
    """Newest first; the terms match anywhere, in any case."""
    search = Search(sender=sender, recipient=recipient, subject=subject, kind=kind or "",
                    since=_day(since), until=_day(until, end=True))
    found = Quarantine(obj.data).search(search, offset=(page - 1) * per_page, limit=per_page)
    if not found.total:
        click.echo("No message matches" if search != Search() else "The quarantine is empty")
        return
    click.echo(f"{'Quarantine ID':<20} {'Kind':<6} {'Date':<17} {'Score':>6} {'Size':>8}  "
               "From -> Recipients")
    for row in found.rows:
        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.received))
        score = f"{row.score:.1f}" if row.score is not None else "-"
        click.echo(f"{row.id:<20} {row.kind:<6} {date:<17} {score:>6} {row.size:>8}  "
                   f"<{safe_text(row.sender)}> -> {safe_text(', '.join(row.recipients), 400)}")
        # Subjects and reasons come from the message: no terminal control characters.
        click.echo(f"{'':<20} ({safe_text(row.reason)}) {safe_text(row.subject)}")
    shown_to = found.offset + len(found.rows)
    click.echo(f"-- {found.total} message(s)" +
               (f", {found.offset + 1}-{shown_to} shown" if found.total > len(found.rows) else ""))


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
