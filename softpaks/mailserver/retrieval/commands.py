"""`gatebox retrieve now`: the web's Retrieve now, run in this process, with
each account's (or trigger's) result printed."""

from __future__ import annotations

import time

import click

from firmware.cli.errors import fail
from firmware.mail import server_type

from ..license import is_licensed
from .session import parts, retrieve


@click.group("retrieve")
def retrieve_group():
    """Mail from the ISP: Multi-drop, Mirrored, ETRN, Mail-bagging, Remote POP."""


@retrieve_group.command("now")
@click.pass_obj
def retrieve_now(obj):
    """Fetch (or send ETRN / the finger) now instead of at the next scheduled time."""
    store = obj.store
    if not is_licensed(store):
        fail("the Mail Server SoftPak is not licensed on this box, so nothing is retrieved; "
             "activate a key with 'gatebox license activate KEY'")
    settings = store.snapshot()
    if not parts(settings):
        fail(f"server type {server_type.in_effect(settings)} retrieves nothing: choose Multi-drop, "
             "Mirrored, ETRN or Mail-bagging (Email Server > Settings), or one that keeps "
             "mailboxes for Remote POP")
    results = retrieve(store, obj.data, time.time())
    for result in results:
        click.echo(result.summary)
    if results and not any(r.ok for r in results):
        raise SystemExit(1)
