"""`gatebox antispam greylist`: Anti-Spam > Greylist from the shell. `show`
works whatever the license (the records outlive a lapse); changing them
needs the SoftPak licensed, as the page does."""

from __future__ import annotations

import time

import click

from firmware.cli.errors import fail

from . import greylist
from .license import is_licensed

NOT_LICENSED = ("the Anti-Spam SoftPak is not licensed on this box, so the greylist cannot be "
                "changed; activate a key with 'gatebox license activate KEY'. Its records are "
                "kept.")


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _licensed_store(obj):
    if not is_licensed(obj.store):
        fail(NOT_LICENSED)
    return obj.store


@click.group("greylist")
def greylist_group():
    """Anti-Spam > Greylist: pending triplets, passes, auto-whitelisted networks."""


@greylist_group.command("show")
@click.option("--limit", default=100, show_default=True, help="Pending triplets shown at most.")
@click.pass_obj
def greylist_show(obj, limit):
    """Counts, the pending triplets with their age, the auto-whitelisted networks."""
    store, now = obj.store, time.time()
    if not is_licensed(store):
        click.echo("(the Anti-Spam SoftPak is not licensed: the greylist defers nothing now)")
    total = greylist.counts(store, now)
    click.echo(f"pending: {total.pending}  passed: {total.passed}  "
               f"auto-whitelisted networks: {total.whitelisted}")
    for row in greylist.pending(store, now, limit):
        wait = f"passes on retry in {_age(row.passes_in)}" if row.passes_in else "passes on retry"
        click.echo(f"pending {row.network} <{row.sender}> -> <{row.recipient}>  "
                   f"age {_age(row.age)}, {wait}")
    for network in greylist.whitelisted_networks(store, now):
        click.echo(f"whitelisted {network.network}  ({network.passed} triplets passed, "
                   f"last mail {_age(now - network.last_seen)} ago)")


@greylist_group.command("pass")
@click.argument("network")
@click.argument("sender")
@click.argument("recipient")
@click.pass_obj
def greylist_pass(obj, network, sender, recipient):
    """Pass now: mail from NETWORK (an address or its /24, /64), SENDER ('' for
    the null sender) to RECIPIENT is accepted from now on."""
    store = _licensed_store(obj)
    try:
        key = greylist.pass_now(store, network, sender, recipient, actor="cli")
    except ValueError as error:
        fail(str(error))
    click.echo(f"passed {key.network} <{key.sender}> -> <{key.recipient}>")


@greylist_group.command("forget")
@click.argument("network")
@click.argument("sender", required=False)
@click.argument("recipient", required=False)
@click.pass_obj
def greylist_forget(obj, network, sender, recipient):
    """Forget one triplet, or with NETWORK alone all of that network's records
    (its auto-whitelisting too)."""
    store = _licensed_store(obj)
    if (sender is None) != (recipient is None):
        fail("give NETWORK alone, or NETWORK SENDER RECIPIENT")
    try:
        gone = greylist.forget(store, network, sender, recipient, actor="cli")
    except ValueError as error:
        fail(str(error))
    click.echo(f"forgot {gone} record(s)")
